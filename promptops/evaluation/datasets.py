"""Test cases from data files next to the prompts: JSONL and CSV, one case a row, streamed.

A prompt's `tests` list holds inline cases and dataset entries:

    {"dataset": "datasets/support.jsonl", "name": "support", "vars": {...}, "assert": [...],
     "repeat": 3, "min_pass_rate": 0.66, "threshold": 0.8}

`dataset` is relative to the prompts directory (like `$schema`) and must stay in the repository.
The entry's `vars` are defaults under each row's, its `assert` list applies to every row (before
the row's own), and its `repeat`, `min_pass_rate` and `threshold` apply unless a row sets them.

A row is either the inline case form (a JSONL object with `vars`: `{"vars": {...}, "assert": [...],
"name": ..., "repeat": ..., "min_pass_rate": ..., "threshold": ..., "history": [...]}`) or flat: every
key (JSONL) or column (CSV) is a variable, except those starting with `__`: `__name`, `__assert` (a JSON
list of assertions), `__repeat`, `__min_pass_rate`, `__threshold`, `__history`, and `__expected` (also
`__expected2`, `__expected_tone`, ... for more): `TYPE: VALUE` or `TYPE(THRESHOLD): VALUE` for any
assertion type (`contains: Berlin`, `similar(0.8): Berlin is the capital`, `is-json`), anything
else `equals`. An empty CSV cell sets nothing. Rows are read one at a time: memory stays flat
whatever the file's size.

`history` (a JSON list in a CSV cell) holds the past turns the case is answered after, `[{"role":
"user" | "assistant", "content": "..."}]`, placed where the prompt puts history. `__captured` is a
captured request's metadata (promptops.capture: request id, version, the answer it got): kept on the
case (`Case.captured`), never a variable. A captured file (`.promptops/captures/NAME.jsonl`) is a
dataset as it stands: `promptops test NAME --dataset FILE` runs any such file (`with_dataset`), in the
repository or not, and runs on each prompt only the rows captured for it (and the rows that say no prompt).
"""

from __future__ import annotations

import csv
import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from promptops.errors import Problem, PromptOpsError
from promptops.evaluation.assertions import ASSERTION_TYPES
from promptops.evaluation.paths import repo_relative, working_tree_file
from promptops.prompt.model import Prompt
from promptops.prompt.render import parse
from promptops.prompt.schema import json_path, line_of, reject_duplicates, schema

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
CASE_KEYS = ("name", "vars", "assert", "repeat", "min_pass_rate", "threshold", "history")
CAPTURED = "__captured"  # a captured request's metadata (promptops.capture), kept on the case
EXTERNAL = "__file"  # a dataset entry naming a file by its own path (`with_dataset`), never written in a prompt file
MAX_PROBLEMS_PER_FILE = 20
_NUMERIC_TYPES = frozenset({"min-length", "max-length", "latency-ms", "latency", "tokens"})
_BARE = frozenset({"is-json", "json-schema", "tool-call"})  # need no value (json-schema: the prompt's own schema)
_SHORTHAND = re.compile(r"(?P<type>[a-z][a-z-]*)(?:\((?P<threshold>\d*\.?\d+)\))?(?::[ \t]?(?P<value>.*))?", re.S)

Opener = Callable[[str], IO[bytes]]
"""Repository-relative path -> a binary stream (the working tree by default; a runner may read a commit)."""


@dataclass(frozen=True)
class Case:
    """One test case, inline or a dataset row; `source` locates it (`prompts/x.json $.tests[0]`, `file:line`)."""

    name: str
    vars: Mapping[str, str] = field(default_factory=dict)
    assertions: tuple[Mapping[str, Any], ...] = ()
    repeat: int = 1
    min_pass_rate: float = 1.0
    threshold: float | None = None
    source: str = ""
    history: tuple[Mapping[str, Any], ...] = ()  # past turns, [{"role", "content"}]
    captured: Mapping[str, Any] | None = None  # a captured request's metadata (`__captured`)

    def as_mapping(self) -> dict[str, Any]:
        """The case as assertions and Python checks get it."""
        return {"name": self.name, "vars": dict(self.vars), "assert": [dict(a) for a in self.assertions],
                "repeat": self.repeat, "min_pass_rate": self.min_pass_rate, "threshold": self.threshold,
                "source": self.source, "history": [dict(t) for t in self.history]}


class DatasetError(PromptOpsError):
    """A dataset that cannot be read as test cases; `problem` says where and what to do."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.location()}: {problem.message}", fix=problem.fix)
        self.problem = problem


def expected_assertion(text: str) -> dict[str, Any]:
    """The assertion an `__expected` cell stands for: `TYPE: VALUE`, `TYPE(THRESHOLD): VALUE`, else equals."""
    match = _SHORTHAND.fullmatch(text)
    if not match or match["type"] not in ASSERTION_TYPES or (match["value"] is None and match["type"] not in _BARE):
        return {"type": "equals", "value": text}
    kind, value = match["type"], match["value"]
    out: dict[str, Any] = {"type": kind}
    if kind in _NUMERIC_TYPES and value is not None:
        number: Any = _to_number(value.strip())
        out["max" if kind in ("tokens", "latency") else "value"] = number
    elif kind == "json-schema" and value is not None and value.lstrip().startswith("{"):
        try:
            out["value"] = json.loads(value)
        except ValueError:
            out["value"] = value
    elif value is not None and kind != "is-json":
        out["value"] = value
    if match["threshold"]:
        out["threshold"] = float(match["threshold"])
    return out


def _to_number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


@lru_cache(maxsize=1)
def _assertion_validators() -> tuple[Any, Any]:
    # jsonschema-rs says "valid?" fast on every row; the pure-Python validator only explains a bad one.
    import jsonschema_rs
    from jsonschema import Draft202012Validator

    one = {"$defs": schema()["$defs"], "$ref": "#/$defs/assertion"}
    return jsonschema_rs.validator_for(one), Draft202012Validator(one)


def assertion_problems(assertion: Any) -> list[tuple[str, str | None]]:
    """(message, fix) for each way `assertion` breaks the prompt schema's assertion rules."""
    fast, slow = _assertion_validators()
    if fast.is_valid(assertion):
        return []
    kind = assertion.get("type") if isinstance(assertion, dict) else None
    if isinstance(kind, str) and kind not in ASSERTION_TYPES:
        close = difflib.get_close_matches(kind, ASSERTION_TYPES, n=1)
        return [(f"unknown assertion type {kind!r}", f"did you mean '{close[0]}'?" if close else
                 f"use one of {', '.join(ASSERTION_TYPES)}")]
    return [(f"assertion at {json_path(e.absolute_path)}: {e.message}", None) for e in slow.iter_errors(assertion)]


def required_variables(prompt: Prompt) -> set[str]:
    """Placeholders a row must give: those without a non-empty default in the prompt.

    That is `{user}` (the caller's message) unless the prompt sets a `user` field, and every field
    left empty (`"lang": ""`): an empty field is an input the cases supply.
    """
    texts = [str(m["content"]) for m in prompt.messages if "content" in m] if prompt.is_chat else [prompt.template]
    used = {p.name for text in texts for p in parse(text)[1]} - {"history"}
    return used - {k for k, v in prompt.fields.items() if v}


def known_variables(prompt: Prompt) -> set[str]:
    """Names a row's variables may have: the prompt's placeholders and fields."""
    texts = [str(m["content"]) for m in prompt.messages if "content" in m] if prompt.is_chat else [prompt.template]
    return {p.name for text in texts for p in parse(text)[1]} | set(prompt.fields) | {"user"}


# --- reading rows -----------------------------------------------------------------------------------------


def _decode(raw: bytes, number: int, file: str) -> str | Problem:
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        return Problem(file, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", line=number, column=exc.start + 1,
                       fix="save the file as UTF-8", code="dataset-encoding")


def _jsonl_rows(stream: IO[bytes], file: str) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    for number, raw in enumerate(stream, 1):
        line = _decode(raw, number, file)
        if isinstance(line, Problem):
            yield number, line
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=reject_duplicates)
        except json.JSONDecodeError as exc:
            yield number, Problem(file, f"invalid JSON: {exc.msg}", line=number, column=exc.colno,
                                  fix="write one JSON object per line", code="dataset-json")
            continue
        except (ValueError, RecursionError) as exc:
            yield number, Problem(file, f"invalid JSON: {exc}", line=number, fix="fix the JSON", code="dataset-json")
            continue
        if not isinstance(row, dict):
            yield number, Problem(file, "a row must be a JSON object", line=number,
                                  fix='e.g. {"user": "What is 2+2?", "__expected": "contains: 4"}', code="dataset-row")
            continue
        yield number, row


def _csv_rows(stream: IO[bytes], file: str) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    count = 0

    def lines() -> Iterator[str]:
        nonlocal count
        for raw in stream:
            count += 1
            text = _decode(raw, count, file)
            if isinstance(text, Problem):
                raise DatasetError(text)
            yield text

    reader = csv.reader(lines(), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            yield 1, Problem(file, "empty CSV file: no header row", line=1, code="dataset-csv",
                             fix="the first row names the columns, e.g. user,__expected")
            return
        blank = [i + 1 for i, name in enumerate(header) if not name.strip()]
        twice = sorted({name for name in header if header.count(name) > 1})
        if blank or twice:
            what = f"column {blank[0]} has no name" if blank else f"column {twice[0]!r} appears twice"
            yield 1, Problem(file, f"bad header: {what}", line=1, fix="name every column once", code="dataset-csv")
            return
        start = reader.line_num + 1
        for record in reader:
            if record and len(record) != len(header):
                yield start, Problem(file, f"row has {len(record)} columns, the header has {len(header)}",
                                     line=start, fix="quote cells that contain commas", code="dataset-csv")
            elif record:
                yield start, dict(zip(header, record, strict=True))
            start = reader.line_num + 1
    except DatasetError as exc:
        yield exc.problem.line or count, exc.problem
    except csv.Error as exc:
        yield count, Problem(file, f"invalid CSV: {exc}", line=count, fix="check the quoting", code="dataset-csv")


# --- rows to cases ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    """A dataset entry of a prompt's `tests`, with its location in the prompt file."""

    index: int
    ref: str
    name: str
    vars: Mapping[str, Any]
    assertions: tuple[Mapping[str, Any], ...]
    repeat: int
    min_pass_rate: float
    threshold: float | None
    external: bool = False  # `ref` is a path of its own (`with_dataset`), not one relative to the prompts

    @classmethod
    def of(cls, index: int, test: Mapping[str, Any]) -> _Entry:
        ref = str(test["dataset"])
        name = str(test.get("name") or Path(ref).stem)
        return cls(index, ref, name, dict(test.get("vars", {})), tuple(test.get("assert", [])),
                   int(test.get("repeat", 1)), float(test.get("min_pass_rate", 1.0)), test.get("threshold"),
                   bool(test.get(EXTERNAL)))


def _split(row: Mapping[str, Any], flat_only: bool) -> tuple[dict[str, Any], dict[str, Any], list[Any], list[str]]:
    """(variables, case keys, expected cells, unknown keys) of a row in either form."""
    if not flat_only and isinstance(row.get("vars"), dict):
        meta = {k: v for k, v in row.items() if k in CASE_KEYS and k != "vars"}
        if CAPTURED in row:
            meta["captured"] = row[CAPTURED]
        expected = [v for k, v in row.items() if k.startswith("__expected")]
        unknown = [k for k in row if k not in CASE_KEYS and k != CAPTURED and not k.startswith("__expected")]
        return dict(row["vars"]), meta, expected, unknown
    variables, meta, expected, unknown = {}, {}, [], []
    for key, value in row.items():
        if key.startswith("__expected"):
            expected.append(value)
        elif key == CAPTURED:
            meta["captured"] = value
        elif key.startswith("__"):
            if key[2:] in CASE_KEYS and key != "__vars":
                meta[key[2:]] = value
            else:
                unknown.append(key)
        else:
            variables[key] = value
    return variables, meta, expected, unknown


def _meta_value(key: str, value: Any) -> Any:
    """A case key's value from a JSONL value or a CSV cell (text); ValueError says what is wrong."""
    if isinstance(value, str) and key != "name":
        value = value.strip()
        if key in ("assert", "history", "captured"):
            try:
                value = json.loads(value)
            except ValueError as exc:
                what = {"assert": "a JSON list of assertions", "history": "a JSON list of turns",
                        "captured": "a JSON object"}[key]
                raise ValueError(f"__{key} must be {what} ({exc})") from None
        else:
            value = _to_number(value)
    if key == "history":
        return _history(value)
    if key == "captured":
        if not isinstance(value, dict):
            raise ValueError("__captured must be an object (a captured request's metadata)")
        return value
    if key == "name":
        if not isinstance(value, str) or not value.strip():
            raise ValueError("name must be a non-empty string")
        return value
    if key == "assert":
        value = [value] if isinstance(value, dict) else value
        if not isinstance(value, list):
            raise ValueError("assert must be a list of assertions")
        return value
    if key == "repeat":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise ValueError(f"repeat must be an integer from 1 to 1000, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{key} must be a number from 0 to 1, got {value!r}")
    return float(value)


def _history(value: Any) -> tuple[dict[str, Any], ...]:
    """Past turns: a list of {"role", "content"} objects (the roles a prompt takes are checked when it renders)."""
    if not isinstance(value, list):
        raise ValueError('history must be a list of turns, [{"role": "user", "content": "..."}, ...]')
    for index, turn in enumerate(value):
        if not isinstance(turn, dict) or not isinstance(turn.get("role"), str) or not isinstance(
                turn.get("content", ""), str):
            raise ValueError(f'history[{index}] must be {{"role": "user" | "assistant", "content": "..."}}')
    return tuple(value)


def _variables(raw: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    out, bad = {}, []
    for key, value in raw.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = json.dumps(value)
        else:
            bad.append(f"variable {key!r} must be a string, got {json.dumps(value)[:40]}")
    return out, bad


def _row_case(row: Mapping[str, Any], number: int, entry: _Entry, file: str,
              is_csv: bool) -> tuple[Case | None, list[Problem], set[str]]:
    """The case a row describes (None when it is invalid), its problems, and its variable names."""
    def problem(message: str, fix: str | None = None) -> Problem:
        return Problem(file, message, line=number, fix=fix, code="dataset-row")

    raw_vars, raw_meta, expected, unknown = _split(row, is_csv)
    problems = [problem(f"unknown key {k!r}", "case keys start with __ in flat rows: __name, __assert, "
                        "__expected, __repeat, __min_pass_rate, __threshold, __history") for k in unknown]
    variables, bad = _variables(raw_vars)
    problems += [problem(message, "quote the value") for message in bad]
    meta: dict[str, Any] = {}
    for key, value in raw_meta.items():
        if is_csv and value == "":
            continue
        try:
            meta[key] = _meta_value(key, value)
        except ValueError as exc:
            problems.append(problem(str(exc)))
    assertions = list(entry.assertions) + list(meta.get("assert", []))
    for cell in expected:
        if isinstance(cell, str) and cell != "":
            assertions.append(expected_assertion(cell))
        elif not isinstance(cell, str) and cell is not None:
            assertions.append({"type": "equals", "value": cell if isinstance(cell, int | float) else str(cell)})
    for i, assertion in enumerate(assertions[len(entry.assertions):], 1):
        problems += [problem(f"assertion {i}: {message}", fix) for message, fix in assertion_problems(assertion)]
    if problems:
        return None, problems, set(variables)
    case = Case(name=meta.get("name", f"{entry.name}:{number}"),
                vars={**_variables(entry.vars)[0], **variables}, assertions=tuple(assertions),
                repeat=meta.get("repeat", entry.repeat), min_pass_rate=meta.get("min_pass_rate", entry.min_pass_rate),
                threshold=meta.get("threshold", entry.threshold), source=f"{file}:{number}",
                history=meta.get("history", ()), captured=meta.get("captured"))
    return case, [], set(variables)


def _open(repo: Path, opener: Opener | None, rel: str) -> IO[bytes]:
    return opener(rel) if opener is not None else open(working_tree_file(repo, rel), "rb")


def _dataset_rows(entry: _Entry, repo: Path, prompts_dir: str,
                  opener: Opener | None) -> Iterator[tuple[int, Mapping[str, Any] | Problem, str, bool]]:
    """(line, row or problem, file, is CSV) for each row; raises PromptOpsError when the file cannot be opened."""
    rel = entry.ref if entry.external else repo_relative(entry.ref, prompts_dir)
    kind = FORMATS.get(Path(rel).suffix.lower())
    if kind is None:
        raise PromptOpsError(f"dataset {entry.ref!r} is neither JSONL nor CSV",
                             fix="name it *.jsonl, *.ndjson or *.csv (one case a row)")
    try:
        stream = open(rel, "rb") if entry.external else _open(repo, opener, rel)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        where = "" if entry.external else f" (relative to {prompts_dir}/)"
        raise PromptOpsError(f"dataset file {rel} does not exist",
                             fix=f"create it, or fix the path{where}") from None
    except IsADirectoryError:
        raise PromptOpsError(f"dataset {rel} is a directory", fix="name a JSONL or CSV file") from None
    except OSError as exc:
        raise PromptOpsError(f"cannot read dataset {rel}: {exc.strerror}") from None
    with stream:
        reader = _csv_rows if kind == "csv" else _jsonl_rows
        for number, row in reader(stream, rel):
            yield number, row, rel, kind == "csv"


def iter_dataset(test: Mapping[str, Any], repo: Path, prompts_dir: str = "prompts", *, index: int = 0,
                 opener: Opener | None = None) -> Iterator[Case]:
    """The cases of one dataset entry (`{"dataset": ..., ...}`), one row at a time.

    Raises DatasetError at the first row that cannot be a case, PromptOpsError when the file is missing.
    """
    entry = _Entry.of(index, test)
    for number, row, file, is_csv in _dataset_rows(entry, repo, prompts_dir, opener):
        if isinstance(row, Problem):
            raise DatasetError(row)
        case, problems, _ = _row_case(row, number, entry, file, is_csv)
        if case is None:
            raise DatasetError(problems[0])
        yield case


def iter_cases(prompt: Prompt, repo: Path, prompts_dir: str = "prompts", *,
               opener: Opener | None = None) -> Iterator[Case]:
    """Every test case of a prompt in file order: inline cases, and each dataset's rows, streamed.

    A file of `with_dataset` gives only the rows captured for this prompt (and those that say no prompt).
    """
    file = f"{prompts_dir}/{prompt.name}.json"
    for index, test in enumerate(prompt.tests):
        if "dataset" in test:
            cases = iter_dataset(test, repo, prompts_dir, index=index, opener=opener)
            if test.get(EXTERNAL):
                cases = (c for c in cases if not c.captured or c.captured.get("prompt") in (None, prompt.name))
            yield from cases
            continue
        yield Case(name=str(test["name"]), vars=dict(test.get("vars", {})), assertions=tuple(test.get("assert", [])),
                   repeat=int(test.get("repeat", 1)), min_pass_rate=float(test.get("min_pass_rate", 1.0)),
                   threshold=test.get("threshold"), source=f"{file} $.tests[{index}]",
                   history=tuple(test.get("history", ())))


def with_dataset(prompt: Prompt, path: Path) -> Prompt:
    """`prompt` whose test cases are the rows of the JSONL or CSV file at `path` instead of its own
    (`promptops test NAME --dataset FILE`): any file, inside the repository or not, e.g. a capture."""
    entry = {"dataset": str(path), "name": path.stem, EXTERNAL: True}
    return Prompt(prompt.name, {**prompt.document, "tests": [entry]}, prompt.config)


def read_file(path: Path) -> Iterator[Case]:
    """The cases of any JSONL or CSV file, one row at a time (`promptops review --replay`: captured rows,
    each with its `captured` metadata). Raises DatasetError at the first row that cannot be a case."""
    return iter_dataset({"dataset": str(path), "name": path.name, EXTERNAL: True}, Path("."))


# --- validation -------------------------------------------------------------------------------------------

def _check_rows(prompt: Prompt, entry: _Entry, rows: Iterator[tuple[int, Any, str, bool]]) -> list[Problem]:
    required, known = required_variables(prompt), known_variables(prompt)
    given = set(entry.vars)
    problems: list[Problem] = []
    reported: set[frozenset[str]] = set()
    warned: set[str] = set()
    count, without_assertions = 0, 0
    file = ""
    for number, row, file, is_csv in rows:
        if len(problems) >= MAX_PROBLEMS_PER_FILE:
            problems.append(Problem(file, f"stopped after {MAX_PROBLEMS_PER_FILE} problems", line=number,
                                    fix="fix these and validate again", code="dataset-many"))
            break
        if isinstance(row, Problem):
            problems.append(row)
            continue
        count += 1
        case, found, names = _row_case(row, number, entry, file, is_csv)
        problems += found
        missing = frozenset(required - given - names)
        if missing and not (is_csv and missing in reported):
            reported.add(missing)
            what = "column" if is_csv else "key"
            listed = ", ".join(f"{{{name}}}" for name in sorted(missing))
            problems.append(Problem(file, f"no value for {listed} of prompt '{prompt.name}'", line=number,
                                    fix=f"add a {what} named {', '.join(sorted(missing))}"
                                        + ("" if is_csv else " (or put it under `vars`)")
                                        + f", or give it a value under the entry's `vars` in {prompt.name}.json",
                                    code="dataset-missing-variable"))
        for name in sorted(names - known - warned):
            warned.add(name)
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "remove it, or use it in the prompt"
            problems.append(Problem(file, f"{name!r} is not a placeholder or field of prompt '{prompt.name}'",
                                    line=number, severity="warning", fix=hint, code="dataset-unused-variable"))
        if case is not None and not case.assertions:
            without_assertions += 1
    if count == 0 and not any(p.severity == "error" for p in problems):
        problems.append(Problem(file, "the dataset has no rows", severity="warning", code="dataset-empty",
                                fix="add one case a row"))
    if without_assertions:
        problems.append(Problem(file, f"{without_assertions} row(s) have no assertion: their answers are only recorded",
                                severity="warning", code="dataset-no-assertion",
                                fix="add `assert` to the entry, or __expected / __assert to the rows"))
    return problems


_PYTHON_REF = re.compile(r"(?P<path>[^:]+\.py):(?P<function>[A-Za-z_][A-Za-z0-9_]*)")


def _referenced_file(assertion: Mapping[str, Any], repo: Path, prompts_dir: str,
                     opener: Opener | None) -> tuple[str, str] | None:
    """(message, fix) when a `python` or `json-schema` assertion names a file that is not usable (never run)."""
    kind, value = assertion.get("type"), assertion.get("value")
    if kind == "python":
        match = _PYTHON_REF.fullmatch(str(value))
        if not match:
            return f"python assertion {value!r} must name 'file.py:function'", "e.g. 'checks/answers.py:is_polite'"
        ref = match["path"]
    elif kind == "json-schema" and isinstance(value, str):
        ref = value
    else:
        return None
    try:
        rel = repo_relative(ref, prompts_dir)
        with _open(repo, opener, rel) as stream:
            data = stream.read()
    except PromptOpsError as exc:
        return exc.message, exc.fix
    except OSError:
        return f"{kind} assertion: file {repo_relative(ref, prompts_dir)} does not exist", \
            f"create it, or fix the path (relative to {prompts_dir}/)"
    if kind == "json-schema":
        try:
            json.loads(data)
        except ValueError as exc:
            return f"schema file {rel} is not JSON: {exc}", "fix the JSON"
    return None


def check_datasets(prompt: Prompt, repo: Path, prompts_dir: str = "prompts", *,
                   opener: Opener | None = None) -> list[Problem]:
    """Located problems of the files a prompt's tests name (what `promptops validate` adds to the schema).

    Datasets: missing or unreadable files, rows that are not cases (file:line), variables the rows
    do not give (`{user}` included), each with the fix; each file read once, streaming, and cut
    off at MAX_PROBLEMS_PER_FILE problems. Inline and dataset-entry assertions: `python` and
    `json-schema` files exist inside the repository (nothing is imported or run).
    """
    prompt_file = f"{prompts_dir}/{prompt.name}.json"
    try:
        text = (repo / prompt_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    problems: list[Problem] = []
    for index, test in enumerate(prompt.tests):
        for i, assertion in enumerate(test.get("assert", [])):
            found = _referenced_file(assertion, repo, prompts_dir, opener)
            if found:
                problems.append(Problem(prompt_file, found[0], f"$.tests[{index}].assert[{i}].value",
                                        line_of(text, ["tests", index, "assert", i, "value"]), fix=found[1],
                                        code="test-file"))
        if "dataset" not in test:
            continue
        entry = _Entry.of(index, test)  # the entry itself was checked by the prompt schema
        rows = _dataset_rows(entry, repo, prompts_dir, opener)
        try:
            problems += _check_rows(prompt, entry, rows)
        except PromptOpsError as exc:
            problems.append(Problem(prompt_file, exc.message, f"$.tests[{index}].dataset",
                                    line_of(text, ["tests", index, "dataset"]), fix=exc.fix, code="dataset-file"))
    return problems
