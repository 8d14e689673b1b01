"""The version commands through the real Typer app: log, diff, approve, status, show NAME@REF."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from promptops.cli.app import app
from tests.conftest import GitRepo, prompt_doc

A = "prompts/a.json"


@pytest.fixture
def two(repo: GitRepo) -> GitRepo:
    repo.commit({A: prompt_doc(user="one")}, "first")
    repo.commit({A: prompt_doc(user="two")}, "second")
    return repo


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_log_text_and_json(two: GitRepo) -> None:
    code, out, _ = run("log", "a")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "version\tapproved\tlabels\tcommit\tdate\tauthor\tmessage"
    assert lines[1].startswith("v2\t\t\t") and lines[1].endswith("\tAda Author\tsecond")
    code, out, _ = run("log", "a", "--format", "json")
    assert [v["version"] for v in json.loads(out)] == [2, 1]


def test_approve_then_already_approved(two: GitRepo) -> None:
    code, out, _ = run("approve", "a", "--version", "1", "-m", "ok")
    sha = two.git("rev-parse", "--short=7", "HEAD~1")
    assert (code, out) == (0, f"Approved a v1 ({sha}): tag prompts/a/v1\n")
    assert run("approve", "a", "--version", "1")[1] == f"a v1 ({sha}) is already approved: tag prompts/a/v1\n"
    assert run("log", "a")[1].splitlines()[2].startswith("v1\tyes\t")


def test_approve_refuses_dirty_draft(two: GitRepo) -> None:
    two.write({A: prompt_doc(user="draft")})
    code, out, err = run("approve", "a")
    assert code == 1
    assert err == ("Error: prompt a has uncommitted changes\n"
                   "  fix: commit prompts/a.json first, or approve a committed version with --version N\n")


def test_status(two: GitRepo) -> None:
    two.write({A: prompt_doc(user="draft"), "prompts/b.json": prompt_doc()})
    sha = two.git("rev-parse", "--short=7", "HEAD")
    assert run("status")[1].splitlines() == ["name\tnewest\tapproved\tsignature\tdrift\tworking tree",
                                             f"a\tv2 {sha}\t-\t-\t\tmodified", "b\t-\t-\t-\t\tuntracked"]


@pytest.mark.parametrize(("fmt", "expected"), [
    ("text", "a: modified (a@v1 -> a@draft)"),
    ("markdown", "#### `a`: modified (a@v1 → a@draft)"),
    ("json", '"status": "modified"'),
])
def test_diff_two_refs(two: GitRepo, fmt: str, expected: str) -> None:
    two.write({A: prompt_doc(user="draft")})
    code, out, _ = run("diff", "a@1", "a", "--format", fmt, "--exit-code")
    assert code == 1 and expected in out
    assert run("diff", "a@2", "a@head", "--exit-code") == (0, "No prompt changes.\n", "")


def test_diff_base_head(two: GitRepo) -> None:
    code, out, _ = run("diff", "--base", "HEAD", "--format", "json")
    assert (code, json.loads(out)["changed"]) == (0, False)
    code, out, _ = run("diff", "--base", two.git("rev-parse", "HEAD~1"), "--head", "main", "--exit-code")
    assert code == 1 and out.startswith("a: modified")


@pytest.mark.parametrize(("args", "err"), [
    (("show", "a@9"), "Error: prompt 'a' has no version 9 (the newest is 2)\n"
                      "  fix: list versions with `promptops log a`\n"),
    (("render", "a@-x"), "Error: invalid ref 'a@-x': it starts with '-' and would be read as an option\n"),
    (("log", "zz"), "Error: prompt 'zz' has no committed versions\n  fix: commit it first, or check the name\n"),
])
def test_errors(two: GitRepo, args: tuple[str, ...], err: str) -> None:
    code, _, stderr = run(*args)
    assert code == 1 and stderr.startswith(err)


def test_show_and_render_committed_versions(two: GitRepo) -> None:
    two.write({A: prompt_doc(user="draft")})
    assert run("render", "a@1") == (0, "one", "")
    assert run("render", "a@draft") == (0, "draft", "")
    assert run("render", "a") == (0, "draft", "")
    assert '"user": "two"' in run("show", "a@head")[1]
