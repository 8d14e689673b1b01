"""Terminal output: rich on a TTY, plain text when piped."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import IO, Any

from promptops.errors import Problem


def is_tty(stream: IO[str] | None = None) -> bool:
    return (stream or sys.stdout).isatty()


def echo(text: str = "", *, err: bool = False) -> None:
    """Print one line (typer.echo handles closed pipes and encodings)."""
    import typer

    typer.echo(text, err=err)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """A rich table on a TTY; tab-separated lines (with a header) when piped."""
    if not is_tty():
        echo("\t".join(columns))
        for row in rows:
            echo("\t".join("" if v is None else str(v) for v in row))
        return
    from rich.console import Console
    from rich.table import Table

    grid = Table(title=title)
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if v is None else str(v) for v in row))
    Console().print(grid)


def print_json(value: Any) -> None:
    echo(json.dumps(value, indent=2, ensure_ascii=False))


def print_problems(problems: Sequence[Problem], stream: IO[str] | None = None) -> None:
    """One `Error:`/`Warning:` line per problem, with the fix indented under it."""
    err = stream is sys.stderr
    for problem in problems:
        label = "Error" if problem.severity == "error" else "Warning"
        echo(f"{label}: {problem}", err=err)


def github_annotation(problem: Problem) -> str:
    """A GitHub Actions workflow command that annotates the file inline."""
    def escape(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def escape_property(text: str) -> str:
        return escape(text).replace(":", "%3A").replace(",", "%2C")

    level = "error" if problem.severity == "error" else "warning"
    props = f"file={escape_property(problem.file)},line={problem.line or 1}"
    if problem.column:
        props += f",col={problem.column}"
    message = f"{problem.json_path}: {problem.message}" + (f" ({problem.fix})" if problem.fix else "")
    return f"::{level} {props},title=promptops::{escape(message)}"
