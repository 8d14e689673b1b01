"""Version commands: log, diff, approve, status. Formatting only; the work is in promptops.store.

On the command line a bare NAME means the working-tree file (the draft); NAME@REF a committed version.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from promptops.cli.boundary import EXIT_OK, EXIT_USER_ERROR, boundary
from promptops.cli.output import echo, print_json, table
from promptops.errors import PromptNotFound


def _store(ctx: typer.Context) -> Any:
    from promptops.cli.app import settings
    from promptops.store import open_store

    return open_store(settings(ctx))


def _check_format(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"use {', '.join(allowed[:-1])} or {allowed[-1]}", param_hint="--format")
    return value


def log(ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Prompt name.")],
        format_: Annotated[str, typer.Option("--format", help="text or json.")] = "text") -> int:
    """List a prompt's versions, newest first."""
    _check_format(format_, ("text", "json"))
    versions = _store(ctx).versions(name)
    if format_ == "json":
        print_json([v.to_dict() for v in reversed(versions)])
        return EXIT_OK
    if not versions:
        raise PromptNotFound(f"prompt '{name}' has no committed versions", fix="commit it first, or check the name")
    rows = [(f"v{v.number}", "yes" if v.approved else "", v.short, v.date, v.author, v.message)
            for v in reversed(versions)]
    table(("version", "approved", "commit", "date", "author", "message"), rows)
    return EXIT_OK


def _label(resolved: Any) -> str:
    return "draft" if resolved.draft else f"v{resolved.version.number}"


def diff(ctx: typer.Context,
         refs: Annotated[Optional[list[str]], typer.Argument(help="Two refs of a prompt, e.g. greet@2 greet.")] = None,
         base: Annotated[Optional[str], typer.Option("--base", help="Compare every prompt from this commit...")] = None,
         head: Annotated[Optional[str], typer.Option("--head", help="...to this commit (default HEAD).")] = None,
         format_: Annotated[str, typer.Option("--format", help="text, markdown or json.")] = "text",
         exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit 1 when there are differences.")] = False,
         ) -> int:
    """Show what changed between two versions of a prompt, or in all prompts between two commits."""
    from promptops import diff as semantic

    _check_format(format_, ("text", "markdown", "json"))
    store = _store(ctx)
    if base is not None:
        if refs:
            raise typer.BadParameter("give either two refs or --base/--head, not both")
        head = head or "HEAD"
        diffs = semantic.diff_changes(store.changes(base, head), base_label=base, head_label=head)
    elif refs and len(refs) == 2 and head is None:
        old, new = (store.resolve(ref, default="draft") for ref in refs)
        diffs = [semantic.diff_prompts(new.name, old.prompt, new.prompt, old_label=f"{old.name}@{_label(old)}",
                                       new_label=f"{new.name}@{_label(new)}")]
    else:
        raise typer.BadParameter("give two refs (NAME@A NAME@B) or --base REF [--head REF]")
    if format_ == "json":
        typer.echo(semantic.to_json(diffs), nl=False)
    elif format_ == "markdown":
        typer.echo(semantic.to_markdown(diffs), nl=False)
    else:
        typer.echo(semantic.to_text(diffs, color=sys.stdout.isatty()), nl=False)
    return EXIT_USER_ERROR if exit_code and any(d.changed for d in diffs) else EXIT_OK


def approve(ctx: typer.Context,
            name: Annotated[str, typer.Argument(help="Prompt name.")],
            version: Annotated[Optional[int], typer.Option("--version", help="Version number (default: newest).")]
            = None,
            message: Annotated[Optional[str], typer.Option("-m", "--message", help="Why it is approved.")] = None,
            sign: Annotated[bool, typer.Option("--sign", help="GPG/SSH-sign the approval tag.")] = False) -> int:
    """Approve a version: tag it prompts/NAME/vN so bare NAME serves it."""
    approved, created = _store(ctx).approve(name, version, message, sign)
    if created:
        echo(f"Approved {name} v{approved.number} ({approved.short}): tag {approved.tag}")
    else:
        echo(f"{name} v{approved.number} ({approved.short}) is already approved: tag {approved.tag}")
    return EXIT_OK


def status(ctx: typer.Context,
           format_: Annotated[str, typer.Option("--format", help="text or json.")] = "text") -> int:
    """Show each prompt's newest and approved versions and its working-tree state."""
    _check_format(format_, ("text", "json"))
    rows = _store(ctx).status()
    if format_ == "json":
        print_json([{"name": r.name, "newest": r.newest.number if r.newest else None,
                     "approved": r.approved.number if r.approved else None, "dirty": r.dirty,
                     "untracked": r.untracked} for r in rows])
        return EXIT_OK
    table(("name", "newest", "approved", "working tree"),
          [(r.name, f"v{r.newest.number} {r.newest.short}" if r.newest else "-",
            f"v{r.approved.number}" if r.approved else "-",
            "untracked" if r.untracked else "modified" if r.dirty else "clean") for r in rows])
    return EXIT_OK


def register(app: typer.Typer) -> None:
    """Attach the version commands to the app."""
    app.command("log")(boundary(log))
    app.command("diff")(boundary(diff))
    app.command("approve")(boundary(approve))
    app.command("status")(boundary(status))
