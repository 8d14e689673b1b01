"""Tables people read: aligned on a terminal, TSV when piped, `--format json` a list of objects, for every table."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from promptops.cli.app import app
from promptops.cli.output import aligned
from promptops.config.users import Users
from tests.cli.test_evaluation_cli import saved
from tests.conftest import GitRepo, prompt_doc

LONG = "a description long enough that no narrow terminal shows all of it"

# (command, piped header line, keys of each JSON object)
TABLES = [
    (["list"], "name\tmodel\tstatus\tdescription", {"name", "model", "valid", "description"}),
    (["log", "a"], "version\tapproved\tlabels\tcommit\tdate\tauthor\tmessage",
     {"name", "version", "commit", "blob", "author", "email", "date", "message", "approved", "tag", "revoked", "labels"}),
    (["status"], "name\tnewest\tapproved\tsignature\tstaging\tdrift\tworking tree",
     {"name", "newest", "approved", "signature", "labels", "drift", "dirty", "untracked"}),
    (["labels"], "prompt\tlabel\tversion\tcanary\tpolicy", {"prompt", "label", "version", "canary", "protected",
                                                               "history"}),
    (["labels", "a"], "prompt\tlabel\tversion\tcanary\tpolicy\thistory", {"prompt", "label", "version", "canary",
                                                                          "protected", "history"}),
    (["users", "list"], "name\temail\troles", {"name", "email", "roles"}),
    (["runs"], "run\tprompt\tlabel\tmodel\tpassed\tpass rate",
     {"id", "prompt", "version", "label", "commit", "model", "cases", "passed", "pass_rate", "file", "error"}),
]


@pytest.fixture
def released(repo: GitRepo, users: Users) -> GitRepo:
    """Prompt a (v1, on staging), one person, one saved run."""
    repo.commit({"prompts/a.json": prompt_doc(description=LONG), "labels.json": {"labels": {"a": {"staging": 1}}}})
    users.add("Bo", "bo@example.com", ["editor", "approver"])
    saved(repo, "v1", True, "staging")
    return repo


def run(*args: str, columns: int = 80) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize(("args", "header", "keys"), TABLES)
def test_piped_output_is_tsv_with_a_header(released: GitRepo, args: list[str], header: str, keys: set[str]) -> None:
    lines = run(*args, columns=20).splitlines()  # COLUMNS never cuts TSV
    assert lines[0] == header and len(lines) == 2
    assert len(lines[1].split("\t")) == len(header.split("\t")) and "  " not in lines[1] and "…" not in lines[1]


@pytest.mark.parametrize(("args", "header", "keys"), TABLES)
def test_json_is_a_list_of_objects_with_stable_keys(released: GitRepo, args: list[str], header: str,
                                                    keys: set[str]) -> None:
    [row] = json.loads(run(*args, "--format", "json"))
    assert set(row) == keys


@pytest.mark.parametrize(("args", "header", "keys"), TABLES)
def test_table_format_is_aligned_and_fits_the_terminal(released: GitRepo, args: list[str], header: str,
                                                       keys: set[str]) -> None:
    lines = run(*args, "--format", "table", columns=100).splitlines()
    starts = [lines[0].index(column) for column in header.split("\t")]
    assert lines[0].split() == header.replace("\t", " ").split() and starts == sorted(starts)
    assert all(line[start - 2:start].strip() == "" for line in lines for start in starts[1:])  # a gap before each
    assert max(map(len, lines)) <= 100 and "\t" not in "".join(lines)


def test_long_prose_is_cut_with_an_ellipsis_and_identifiers_are_not(released: GitRepo) -> None:
    lines = run("list", "--format", "table", columns=50).splitlines()
    assert lines == ["name  model  status  description", "a            ok      a description long enough th…"]  # 50 cells
    assert run("list", "--format", "tsv", columns=50).splitlines()[1] == f"a\t\tok\t{LONG}"


@pytest.mark.parametrize(("rows", "width", "expected"), [
    ([["a", "x y"]], None, ["h1  h2", "a   x y"]),
    ([["ab", "one two three"]], 16, ["h1  h2", "ab  one two thr…"]),
    ([["a-long-identifier", "z"]], 10, ["h1                 h2", "a-long-identifier  z"]),  # too narrow: not cut
    ([["日本", "x"]], None, ["h1    h2", "日本  x"]),  # wide characters take two cells
])
def test_aligned(rows: list[list[str]], width: int | None, expected: list[str]) -> None:
    assert aligned(["h1", "h2"], rows, width) == expected


@pytest.mark.parametrize(("fmt", "code"), [("text", 0), ("tsv", 0), ("xml", 2)])
def test_format_values(released: GitRepo, fmt: str, code: int) -> None:
    result = CliRunner().invoke(app, ["list", "--format", fmt])
    assert result.exit_code == code and (code or result.stdout.startswith("name\tmodel"))
