"""Version commands: log, diff, approve, revoke, status, promote, rollback, labels. Formatting only; the work is in promptops.store.

On the command line a bare NAME means the working-tree file (the draft); NAME@REF a committed version.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from promptops.cli.boundary import EXIT_OK, EXIT_USER_ERROR, boundary
from promptops.cli.output import Format, echo, resolve_format, table
from promptops.errors import PromptNotFound


def _store(ctx: typer.Context) -> Any:
    from promptops.cli.context import settings
    from promptops.store import open_store

    return open_store(settings(ctx))


def _check_format(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"use {', '.join(allowed[:-1])} or {allowed[-1]}", param_hint="--format")
    return value


def log(ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Prompt name.")],
        format_: Format = None) -> int:
    """List a prompt's versions, newest first."""
    versions = _store(ctx).versions(name)
    if not versions:
        raise PromptNotFound(f"prompt '{name}' has no committed versions", fix="commit it first, or check the name")
    newest_first = list(reversed(versions))
    # On a terminal the minute is enough (as `gh` shortens times there); tsv and json keep the ISO date.
    short = resolve_format(format_) == "table"
    rows = [(f"v{v.number}", _approval(v), ", ".join(v.labels), v.short,
             f"{v.date[:10]} {v.date[11:16]}" if short else v.date, v.author, v.message) for v in newest_first]
    table(("version", "approved", "labels", "commit", "date", "author", "message"), rows, fmt=format_,
          records=[v.to_dict() for v in newest_first])
    return EXIT_OK


def _approval(version: Any) -> str:
    return "yes" if version.approved else "revoked" if version.revoked else ""


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
    from promptops.cli.context import settings
    from promptops.prompt import diff as semantic

    _check_format(format_, ("text", "markdown", "json"))
    store = _store(ctx)
    model = settings(ctx).default_model  # chat prompts without a `model` render with this model's chat template
    if base is not None:
        if refs:
            raise typer.BadParameter("give either two refs or --base/--head, not both")
        head = head or "HEAD"
        diffs = semantic.diff_changes(store.changes(base, head), base_label=base, head_label=head, default_model=model)
    elif refs and len(refs) == 2 and head is None:
        old, new = (store.resolve(ref, default="draft") for ref in refs)
        diffs = [semantic.diff_prompts(new.name, old.prompt, new.prompt, old_label=f"{old.name}@{_label(old)}",
                                       new_label=f"{new.name}@{_label(new)}", default_model=model)]
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


def _drift(row: Any, label: str) -> str:
    target = row.labels.get(label)
    if target is None:
        return f"{label} points to a missing version"
    behind = row.drift(label)
    return f"{label} {behind} version{'s' * (behind != 1)} behind newest" if behind else ""


def status(ctx: typer.Context, format_: Format = None) -> int:
    """Show each prompt's newest, approved and labelled versions, drift and working-tree state."""
    store = _store(ctx)
    rows = store.status()
    signatures = {r.name: store.signature(r.tagged) if r.tagged else None for r in rows}
    labels = sorted({label for r in rows for label in r.labels}, key=lambda k: (k != "production", k))
    table(("name", "newest", "approved", "signature", *labels, "drift", "working tree"),
          [(r.name, f"v{r.newest.number} {r.newest.short}" if r.newest else "-",
            f"v{r.approved.number}" if r.approved else "-",
            f"v{r.tagged.number} {signatures[r.name]}" if r.tagged else "-",
            *(f"v{r.labels[k].number}" if r.labels.get(k) else "-" for k in labels),
            "; ".join(filter(None, (_drift(r, k) for k in r.labels))),
            "untracked" if r.untracked else "modified" if r.dirty else "clean") for r in rows],
          fmt=format_,
          records=[{"name": r.name, "newest": r.newest.number if r.newest else None,
                    "approved": r.approved.number if r.approved else None,
                    "signature": None if signatures[r.name] is None else {
                        "version": r.tagged.number, "state": signatures[r.name].state,
                        "signer": signatures[r.name].signer, "detail": signatures[r.name].detail},
                    "labels": {k: v.number if v else None for k, v in r.labels.items()},
                    "drift": {k: r.drift(k) for k in r.labels}, "dirty": r.dirty,
                    "untracked": r.untracked} for r in rows])
    return EXIT_OK


def _check_canary(value: Optional[float]) -> Optional[float]:
    if value is not None and not 0 < value < 100:
        raise typer.BadParameter(f"a percentage above 0 and below 100, got {value:g}", param_hint="--canary")
    return value


def promote(ctx: typer.Context,
            ref: Annotated[str, typer.Argument(help="NAME@REF: the version to promote (NAME alone: the newest).")],
            label: Annotated[str, typer.Argument(help="Label to point at it, e.g. production or staging.")],
            commit: Annotated[bool, typer.Option("--commit", help="Commit labels.json (only that file).")] = False,
            canary: Annotated[Optional[float], typer.Option(
                "--canary", metavar="PERCENT", callback=_check_canary,
                help="Make the version the label's canary for this share of callers (0 < PERCENT < 100); "
                     "the label's own version stays.")] = None,
            message: Annotated[Optional[str], typer.Option("-m", "--message", help="Commit message.")] = None) -> int:
    """Point a label at a version in labels.json, or start a canary of it (protected: approved versions only).

    --canary 10 serves the version to 10% of callers (by sticky key) and the label's own version to
    the rest; run it again with another percentage to change the share. Promoting the canary's version
    without --canary finishes the canary (that version serves everyone); `promptops rollback` ends it.
    """
    change = _store(ctx).promote(ref, label, commit=commit, canary=canary, message=message)
    _report_move(change, commit)
    return EXIT_OK


def rollback(ctx: typer.Context,
             name: Annotated[str, typer.Argument(help="Prompt name.")],
             label: Annotated[str, typer.Argument(help="Label to move back.")] = "production",
             commit: Annotated[bool, typer.Option("--commit", help="Commit labels.json (only that file).")] = False) -> int:
    """End a label's canary, else move the label back to its previous version (from labels.json's git history).

    While a canary runs, rollback ends it and the label's own version serves everyone again; a second
    rollback then moves the label itself back.
    """
    change = _store(ctx).rollback(name, label, commit=commit)
    _report_move(change, commit)
    return EXIT_OK


def _report_move(change: Any, committed: bool) -> None:
    where = f"committed {change.commit[:7]}" if committed and change.commit else \
        f"written to {change.path}; commit it (or pass --commit) to serve it"
    echo(f"{change.describe()} ({where})")


def labels(ctx: typer.Context,
           name: Annotated[Optional[str], typer.Argument(help="Prompt name (default: every prompt).")] = None,
           format_: Format = None) -> int:
    """List labels and the version each points to; with NAME, also each label's history."""
    store = _store(ctx)
    current = store.labels()
    pairs = [(n, label, number) for n in ([name] if name else sorted(current.prompts))
             for label, number in sorted(current.of(n).items())]
    # History costs a walk of the labels file's commits per label: only for one prompt, as asked.
    history = {label: store.label_history(n, label) for n, label, _ in pairs} if name else {}
    moves = {label: " -> ".join(f"v{v}" if v else "(unset)" for _, v in history[label]) for label in history}
    canaries = {(n, label): current.canary(n, label) for n, label, _ in pairs}
    table(("prompt", "label", "version", "canary", "policy", *(["history"] if name else [])),
          [(n, label, f"v{number}", str(canaries[n, label] or ""), "protected" if label in current.protected else "",
            *([moves[label]] if name else [])) for n, label, number in pairs],
          fmt=format_,
          records=[{"prompt": n, "label": label, "version": number, "protected": label in current.protected,
                    "canary": ({"version": canaries[n, label].version, "weight": canaries[n, label].weight}
                               if canaries[n, label] else None),
                    "history": [{"commit": c, "version": v} for c, v in history[label]] if name else None}
                   for n, label, number in pairs])
    return EXIT_OK


def revoke(ctx: typer.Context,
           name: Annotated[str, typer.Argument(help="Prompt name.")],
           version: Annotated[int, typer.Option("--version", help="The approved version to revoke.")],
           message: Annotated[str, typer.Option("-m", "--message", help="Why (recorded in the revocation tag).")]) -> int:
    """Revoke a version's approval with a tag next to it (history is not rewritten)."""
    revoked = _store(ctx).revoke(name, version, message)
    echo(f"Revoked the approval of {name} v{revoked.number} (tag prompts/{name}/v{revoked.number}-revoked); "
         "push tags to make it effective everywhere")
    return EXIT_OK


def register(app: typer.Typer) -> None:
    """Attach the version commands to the app."""
    app.command("log")(boundary(log))
    app.command("diff")(boundary(diff))
    app.command("approve")(boundary(approve))
    app.command("status")(boundary(status))
    app.command("promote")(boundary(promote))
    app.command("rollback")(boundary(rollback))
    app.command("labels")(boundary(labels))
    app.command("revoke")(boundary(revoke))
