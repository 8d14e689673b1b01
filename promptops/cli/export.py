"""`promptops export`: the snapshot an app bundles at build time (read by `promptops.client.Prompts`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from promptops.cli.boundary import EXIT_OK, boundary


def export(ctx: typer.Context,
           names: Annotated[Optional[list[str]], typer.Argument(help="Prompts to export (default: every prompt with an approved version).")] = None,
           output: Annotated[Path, typer.Option("--output", "-o", help="The snapshot file to write.")] = Path("prompts.snapshot.json")) -> int:
    """Write the served (approved and labelled) versions of every prompt, or the named ones, to one JSON snapshot file."""
    from promptops.cli.context import settings
    from promptops.client import build_snapshot
    from promptops.files import atomic_write
    from promptops.store import open_store

    snapshot = build_snapshot(open_store(settings(ctx)), names or ())
    atomic_write(output, (json.dumps(snapshot, indent=2, ensure_ascii=False) + "\n").encode())
    for name in snapshot["skipped"]:
        typer.echo(f"skipped {name}: no approved version", err=True)
    typer.echo(f"wrote {len(snapshot['prompts'])} prompt versions to {output}", err=True)
    return EXIT_OK


def register(app: typer.Typer) -> None:
    """Attach `export`."""
    app.command("export")(boundary(export))
