"""Terminal output: aligned tables on a terminal, TSV when piped, JSON on request.

Tables follow `gh` and `kubectl`: on a terminal, columns padded to fit and long values cut with an
ellipsis at the terminal width; piped, one tab-separated line per row under a header line, never
padded or cut, so `cut -f2` and `awk -F'\\t'` read it. `--format json` keeps every value exact.
The alignment is written here rather than with rich: importing rich costs ~80 ms, the whole budget
of `promptops --help`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Annotated, Any, Optional

import typer

from promptops.errors import Problem

FORMATS = ("table", "tsv", "json")
GAP = "  "  # between columns on a terminal
MIN_WIDTH = 8  # a column cut to fit the terminal keeps at least this much (or its header's width)


def is_tty(stream: IO[str] | None = None) -> bool:
    return (stream or sys.stdout).isatty()


def echo(text: str = "", *, err: bool = False) -> None:
    """Print one line (typer.echo handles closed pipes and encodings)."""
    typer.echo(text, err=err)


def _check_format(value: Optional[str]) -> Optional[str]:
    if value is None or value in FORMATS:
        return value
    if value == "text":  # the name of the default before tsv and table existed; scripts may still pass it
        return None
    raise typer.BadParameter("use table, tsv or json")


Format = Annotated[Optional[str], typer.Option(
    "--format", metavar="[table|tsv|json]", callback=_check_format,
    help="table, tsv or json (default: table on a terminal, tsv when piped).")]


def resolve_format(fmt: str | None) -> str:
    """`fmt` as given, else table on a terminal and tsv when piped (`text` is the default's old name)."""
    if fmt is not None and fmt in FORMATS:
        return fmt
    return "table" if is_tty() else "tsv"


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, fmt: str | None = None,
          records: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Print rows as an aligned table, TSV or JSON (`fmt`; default: table on a terminal, tsv when piped).

    JSON is a list of objects: `records` when given (typed values, stable keys), else each row keyed
    by its column. None prints as an empty cell; tabs and newlines inside a value print as spaces.
    """
    chosen = resolve_format(fmt)
    if chosen == "json":
        print_json(list(records) if records is not None else [dict(zip(columns, row, strict=True)) for row in rows])
        return
    cells = [[_cell(v) for v in row] for row in rows]
    if chosen == "tsv":
        for line in (list(columns), *cells):
            echo("\t".join(line))
        return
    for line in aligned(list(columns), cells, _terminal_width(), bold_header=is_tty() and "NO_COLOR" not in os.environ):
        echo(line)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")


def _terminal_width() -> int | None:
    """COLUMNS when set (as `ls` reads it), else the terminal's width; None (never cut) when there is neither."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if is_tty():
        try:
            return os.get_terminal_size(sys.stdout.fileno()).columns
        except (OSError, ValueError):
            return None
    return None


def aligned(columns: list[str], rows: list[list[str]], width: int | None, *, bold_header: bool = False) -> list[str]:
    """Lines of padded columns; with `width`, the widest prose columns are cut (ending in …) so lines fit."""
    widths = [max(map(_width, column)) for column in zip(columns, *rows, strict=True)]
    if width is not None:
        # Only prose is cut (a column with a space in some value): names, ids, dates and hashes stay whole.
        floors = [min(w, max(_width(c), MIN_WIDTH)) if any(" " in v for v in values) else w
                  for w, c, values in zip(widths, columns, zip(*rows, strict=True), strict=False)]
        widths = _fit(widths, floors, width - len(GAP) * (len(columns) - 1))
    lines = []
    for n, row in enumerate([columns, *rows]):
        cells = [_clip(v, w) for v, w in zip(row, widths, strict=True)]
        line = GAP.join([*(_pad(c, w) for c, w in zip(cells[:-1], widths, strict=False)), *cells[-1:]])
        lines.append(f"\x1b[1m{line}\x1b[0m" if bold_header and n == 0 else line)
    return lines


def _fit(widths: list[int], floors: list[int], room: int) -> list[int]:
    """Cap every column at the largest one width that makes the row fit in `room` (none below its floor)."""
    if sum(widths) <= room:
        return widths
    low, high = 0, max(widths)
    while low < high:
        cap = (low + high + 1) // 2
        if sum(min(w, max(cap, f)) for w, f in zip(widths, floors, strict=True)) <= room:
            low = cap
        else:
            high = cap - 1
    return [min(w, max(low, f)) for w, f in zip(widths, floors, strict=True)]


def _width(text: str) -> int:
    """Terminal cells: East Asian wide characters take two, combining marks none."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _clip(text: str, width: int) -> str:
    if _width(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        used += _width(char)
        if used > width - 1:  # leave a cell for the ellipsis
            break
        kept.append(char)
    return "".join(kept) + "…"


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


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
