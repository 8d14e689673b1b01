"""`promptops canary status`: a label's canary against its primary. Formatting only; the statistics are in promptops.canary.

The versions come from the committed labels file (the serving branch's newest commit), the request
records and feedback from the state store the gateway writes (PROMPTOPS_STATE_URL, else the
repository's SQLite file).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Annotated, Optional

import typer

from promptops.cli.boundary import EXIT_OK, boundary
from promptops.cli.output import Format, echo, print_json, resolve_format, table
from promptops.errors import VersionNotFound

canary_app = typer.Typer(help="Compare a label's canary with its primary version from the gateway's request records.",
                         no_args_is_help=True)

_SPAN = re.compile(r"(\d+)\s*([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """`24h`, `7d`, `30m`, `2w` before now, or an ISO date/time (local time unless it has an offset)."""
    if text is None:
        return None
    span = _SPAN.fullmatch(text.strip())
    if span:
        return (time.time() if now is None else now) - int(span[1]) * _SECONDS[span[2]]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use a span such as 24h, 7d or 30m, or an ISO date such as 2025-06-01",
                                 param_hint="--since") from None


def _since(value: Optional[str]) -> Optional[str]:
    parse_since(value)  # a bad value is a usage error (exit 2) before the store is opened
    return value


def status(ctx: typer.Context,
           name: Annotated[str, typer.Argument(help="Prompt name.")],
           label: Annotated[str, typer.Option("--label", help="The label whose canary to compare.")] = "production",
           state_url: Annotated[Optional[str], typer.Option(
               "--state-url", envvar="PROMPTOPS_STATE_URL",
               help="Where the gateway keeps request records (default: the repository's .promptops/state.db).")]
           = None,
           since: Annotated[Optional[str], typer.Option(
               "--since", callback=_since,
               help="Only requests after this: 24h, 7d, 30m or an ISO date/time (default: all).")] = None,
           min_count: Annotated[int, typer.Option(
               "--min-count", min=1, help="Fewest observations per side for a test.")] = 30,
           format_: Format = None) -> int:
    """Compare the canary of a label with its primary: error rate, latency, TTFT, tokens and feedback, each tested."""
    from promptops import canary
    from promptops.cli.context import settings
    from promptops.state import StateStore
    from promptops.store import open_store

    config = settings(ctx)
    labels = open_store(config).labels()
    primary, split = labels.target(name, label), labels.canary(name, label)
    if primary is None:
        raise VersionNotFound(f"prompt '{name}' has no label {label}",
                              fix=f"list its labels with `promptops labels {name}`")
    start = parse_since(since)
    with StateStore.open(state_url, config.repo) as state:
        result = canary.status(state.records(name, label, start), state.feedback_of(name, label, start),
                               primary=primary, canary=split.version if split else None, min_count=min_count)
    if resolve_format(format_) == "json":
        print_json({"prompt": name, "label": label, "weight": split.weight if split else None, **result.to_dict()})
        return EXIT_OK
    echo(canary.heading(name, label, result, split), err=resolve_format(format_) != "table")
    if not result.primary.requests and not (result.canary and result.canary.requests):
        echo(f"No request records of {name} {label} in {state.url}: the gateway writes them where "
             "PROMPTOPS_STATE_URL points (or pass --state-url).", err=True)
    table(result.columns(), result.rows(), fmt=format_)
    return EXIT_OK


def register(app: typer.Typer) -> None:
    """Attach `canary status`."""
    canary_app.command("status")(boundary(status))
    app.add_typer(canary_app, name="canary")
