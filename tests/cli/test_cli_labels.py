"""Release labels through the real Typer app: promote, rollback, labels, revoke, status, validate, NAME@LABEL."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_versions import run
from tests.conftest import GitRepo, prompt_doc

A = "prompts/a.json"


@pytest.fixture
def three(repo: GitRepo) -> GitRepo:
    """a: v1..v3; v1 and v2 approved."""
    for n in (1, 2, 3):
        repo.commit({A: prompt_doc(user=f"u{n}")}, f"v{n}")
    for n in (1, 2):
        repo.git("tag", "-a", "-m", "ok", f"prompts/a/v{n}", f"HEAD~{3 - n}")
    return repo


def test_promote_commit_then_show_by_label(three: GitRepo) -> None:
    code, out, _ = run("promote", "a@1", "production", "--commit")
    assert code == 0 and out.startswith("a: production (unset) -> v1 (committed ")
    assert three.git("log", "-1", "--format=%B").startswith("Promote a v1 to production\n\nPrompt: a\nLabel: production")
    assert json.loads(run("show", "a@production")[1].split("\n---")[0])["user"] == "u1"
    assert run("render", "a@production")[1] == "u1"


def test_rollback_after_two_moves_and_status_drift(three: GitRepo) -> None:
    for ref in ("a@1", "a@2"):
        run("promote", ref, "production", "--commit")
    assert run("rollback", "a", "--commit")[1].startswith("a: production v2 -> v1 (committed ")
    lines = run("status")[1].splitlines()
    assert lines[0] == "name\tnewest\tapproved\tsignature\tproduction\tdrift\tworking tree"
    assert lines[1].split("\t")[3:] == ["v2 not verified (no allowed-signers file in the repository)", "v1",
                                        "production 2 versions behind newest", "clean"]
    assert run("labels", "a")[1].splitlines() == ["prompt\tlabel\tversion\tcanary\tpolicy\thistory",
                                                  "a\tproduction\tv1\t\tprotected\tv1 -> v2 -> v1"]


def test_protected_label_refused_and_staging_allowed(three: GitRepo) -> None:
    code, _, err = run("promote", "a", "production")
    assert code == 1 and "production is a protected label and a v3 cannot take it: it is not approved" in err
    assert run("promote", "a", "staging", "--commit")[0] == 0
    assert run("diff", "a@staging", "a@1", "--exit-code")[0] == 1


def test_revoke_then_validate_flags_the_label(three: GitRepo) -> None:
    run("promote", "a@2", "production", "--commit")
    code, out, _ = run("revoke", "a", "--version", "2", "-m", "wrong answers")
    assert code == 0 and "prompts/a/v2-revoked" in out
    assert run("log", "a")[1].splitlines()[2].startswith("v2\trevoked\tproduction\t")
    code, out, _ = run("validate")
    assert code == 1 and "labels.json:7 at $.labels.a.production: protected label 'production' points to a v2, " \
                         "but its approval was revoked" in out


@pytest.mark.parametrize(("labels", "message"), [
    ({"labels": {"a": {"production": 9}}}, "labels.json:4 at $.labels.a.production: a has no version 9 (the newest is 3)"),
    ({"labels": {"a": {"latest": 1}}}, "labels.json:4 at $.labels.a.latest: invalid label name 'latest'"),
    ({"labels": {"b": {"staging": 1}}}, "labels.json:4 at $.labels.b.staging: label 'staging' names prompt 'b'"),
])
def test_validate_locates_label_problems(three: GitRepo, labels: dict, message: str) -> None:
    three.write({"labels.json": labels})
    code, out, _ = run("validate", "labels.json")
    assert code == 1 and message in out and out.endswith("1 file(s) checked: 1 error(s), 0 warning(s)\n")


def test_promote_canary_then_finish_and_rollback_messages(three: GitRepo) -> None:
    run("promote", "a@1", "production", "--commit")
    code, out, _ = run("promote", "a@2", "production", "--canary", "10", "--commit")
    assert code == 0 and out.startswith("a: production v1, canary v2 at 10% (was 0%) (committed ")
    assert "Canary: v2 at 10%\n" in three.git("log", "-1", "--format=%B")
    assert run("rollback", "a", "--commit")[1].startswith("a: production v1 (canary v2 ended) (committed ")
    run("promote", "a@2", "production", "--canary", "25", "--commit")
    assert run("promote", "a@2", "production", "--commit")[1].startswith("a: production v1 -> v2 (canary finished)")
    assert run("labels", "a")[1].splitlines()[1] == "a\tproduction\tv2\t\tprotected\tv1 -> v2"
    run("promote", "a@1", "production", "--canary", "25", "--commit")
    assert run("labels")[1].splitlines()[1] == "a\tproduction\tv2\tv1 at 25%\tprotected"


@pytest.mark.parametrize("weight", ["0", "100", "-5", "ten"])
def test_promote_canary_weight_is_a_usage_error(three: GitRepo, weight: str) -> None:
    run("promote", "a@1", "production", "--commit")
    code, _, err = run("promote", "a@2", "production", "--canary", weight)
    assert code == 2 and "--canary" in err


def test_promote_canary_refuses_an_unapproved_version_and_validate_flags_a_hand_edit(three: GitRepo) -> None:
    run("promote", "a@1", "production", "--commit")
    code, _, err = run("promote", "a@3", "production", "--canary", "10")
    assert code == 1 and "production is a protected label and a v3 cannot be its canary: it is not approved" in err
    canary = {"version": 3, "weight": 10}
    three.write({"labels.json": {"labels": {"a": {"production": {"version": 1, "canary": canary}}}}})
    code, out, _ = run("validate", "labels.json")
    assert code == 1 and "labels.json:7 at $.labels.a.production.canary.version: protected label 'production' " \
                         "runs a canary of a v3, but it is not approved" in out
