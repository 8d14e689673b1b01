"""`promptops review`: the pull-request report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from promptops.cli.boundary import EXIT_OK, EXIT_USER_ERROR, boundary
from promptops.cli.output import is_tty


def review(ctx: typer.Context,
           base: Annotated[str, typer.Option("--base", help="Base git ref (e.g. origin/main).")],
           head: Annotated[str, typer.Option("--head", help="Head git ref.")] = "HEAD",
           outputs: Annotated[bool, typer.Option("--outputs", help="Run each changed prompt's tests on base and head, and each moved label's on its old and new version, against Triton.")] = False,
           format_: Annotated[str, typer.Option("--format", help="markdown, json or text.")] = "markdown",
           output: Annotated[Optional[Path], typer.Option("--output", help="Write the report here instead of stdout.")] = None,
           junit: Annotated[Optional[Path], typer.Option("--junit", help="Write the head versions' (and new label targets') test results as JUnit XML.")] = None,
           timeout: Annotated[float, typer.Option("--timeout", help="Seconds per model request.")] = 120.0,
           allow_breaking: Annotated[Optional[str], typer.Option("--allow-breaking", metavar="REASON", help="Let breaking contract changes to protected prompts pass, for this reason (shown in the report); CI passes it when the pull request has the `breaking-change` label.")] = None,
           replay: Annotated[Optional[Path], typer.Option("--replay", metavar="FILE", help="Replay the captured requests in FILE (.promptops/captures/NAME.jsonl) on base and head of each changed prompt, and show the answers that changed (implies --outputs).")] = None,
           sample: Annotated[Optional[int], typer.Option("--sample", min=1, metavar="N", help="Replay a sample of N captured rows (the same N for the same file).")] = None) -> int:
    """Report every changed prompt and moved label between two commits (exit 1 on invalid prompts or labels, blocked label moves, undocumented breaking contract changes to protected prompts or newly failing tests)."""
    from promptops.cli.context import settings
    from promptops.cli.triton import grpc_url
    from promptops.evaluation.runner import junit_xml
    from promptops.files import atomic_write
    from promptops.review import build_review, render_report
    from promptops.store import open_store
    from promptops.triton.client import InferenceClient, run_sync

    if format_ not in ("markdown", "json", "text"):
        raise typer.BadParameter("use markdown, json or text", param_hint="--format")
    if allow_breaking is not None and not allow_breaking.strip():
        raise typer.BadParameter("give the reason for the breaking change", param_hint="--allow-breaking")
    if sample is not None and replay is None:
        raise typer.BadParameter("samples the rows of --replay FILE: add --replay", param_hint="--sample")
    outputs = outputs or replay is not None
    s = settings(ctx)
    store = open_store(s)

    async def build() -> object:
        client = InferenceClient(grpc_url(ctx), timeout_s=timeout) if outputs else None
        try:
            return await build_review(store, base, head, client=client, default_model=s.default_model,
                                      allow_breaking=allow_breaking, replay=replay, sample=sample)
        finally:
            if client is not None:
                await client.close()

    report = run_sync(build())
    text = render_report(report, format_, color=output is None and is_tty())
    if output:
        atomic_write(output, text.encode())
    else:
        typer.echo(text, nl=False)
    if junit:
        atomic_write(junit, junit_xml(report.head_results()).encode())
    if output:
        typer.echo(report.summary(), err=True)
    return EXIT_USER_ERROR if report.failed else EXIT_OK


def register(app: typer.Typer) -> None:
    """Attach `review`."""
    app.command("review")(boundary(review))
