"""Labels, promotion, rollback and revocation against real git repositories."""

from __future__ import annotations

import json

import pytest

from promptops.errors import NotApproved, PromptInvalid, RefError, Refused
from promptops.store import PromptStore
from promptops.store.labels import check_policy, parse
from tests.conftest import GitRepo, prompt_doc

A = "prompts/a.json"


@pytest.fixture
def released(repo: GitRepo) -> GitRepo:
    """a: v1, v2, v3, all approved; labels.json committed with production -> v1."""
    for n in (1, 2, 3):
        repo.commit({A: prompt_doc(user=f"u{n}")}, f"v{n}")
        repo.git("tag", "-a", "-m", "ok", f"prompts/a/v{n}", "HEAD")
    repo.commit({"labels.json": {"protected": ["production"], "labels": {"a": {"production": 1}}}}, "labels")
    return repo


def test_bare_name_serves_production_label(released: GitRepo) -> None:
    resolved = PromptStore(released.path).resolve("a")
    assert (resolved.version.number, resolved.label) == (1, "production")
    assert PromptStore(released.path).resolve("a@production").version.labels == ("production",)


def test_promote_twice_then_rollback_to_previous_target(released: GitRepo) -> None:
    store = PromptStore(released.path)
    assert store.promote("a@2", "production", commit=True).describe() == "a: production v1 -> v2"
    store.promote("a@3", "production", commit=True)
    assert store.resolve("a").version.number == 3
    change = store.rollback("a", "production", commit=True)
    assert (change.old, change.new, store.resolve("a").version.number) == (3, 2, 2)
    assert [v for _, v in store.label_history("a", "production")] == [1, 2, 3, 2]
    events = store.label_events("a", "production")
    assert [(e.commit, e.version) for e in events] == store.label_history("a", "production")
    assert {e.author for e in events} == {"Ada Author"} and all(e.date for e in events)
    assert released.git("log", "-1", "--format=%s") == "Roll back a production to v2"
    assert released.git("status", "--porcelain") == ""


def test_promote_without_commit_writes_the_working_tree_and_rollback_undoes_it(released: GitRepo) -> None:
    store = PromptStore(released.path)
    store.promote("a@head", "staging", commit=False)
    assert json.loads((released.path / "labels.json").read_text())["labels"]["a"] == {"production": 1, "staging": 3}
    assert store.labels().target("a", "staging") is None  # not committed: not served
    store.promote("a@2", "production")
    assert store.rollback("a", "production").new == 1


def test_protected_label_refuses_an_unapproved_version(released: GitRepo) -> None:
    released.commit({A: prompt_doc(user="u4")}, "v4")
    with pytest.raises(NotApproved, match="production is a protected label and a v4 cannot take it: it is not approved"):
        PromptStore(released.path).promote("a", "production", commit=True)
    assert PromptStore(released.path).promote("a", "staging", commit=True).new == 4


def test_revocation_unapproves_everywhere(released: GitRepo) -> None:
    store = PromptStore(released.path)
    assert store.revoke("a", 1, "leaks the system prompt").revoked is True
    assert released.git("tag", "-l", "--format=%(contents:subject)", "prompts/a/v1-revoked") == \
        "Revoke approval of prompt a v1"
    with pytest.raises(NotApproved, match="protected label production of 'a' points to v1, but its approval was revoked"):
        store.resolve("a")
    with pytest.raises(Refused, match="the approval of a v1 was revoked"):
        store.approve("a", 1)
    assert store.resolve("a@approved").version.number == 3


@pytest.mark.parametrize(("label", "message"), [
    ("head", "invalid label 'head'"), ("Prod", "invalid label 'Prod'"), ("abcdef1", "invalid label 'abcdef1'"),
])
def test_bad_label_names(released: GitRepo, label: str, message: str) -> None:
    with pytest.raises(RefError, match=message):
        PromptStore(released.path).promote("a@1", label)


@pytest.mark.parametrize(("labels", "message", "path"), [
    ({"labels": {"a": {"production": 9}}}, "a has no version 9 (the newest is 3)", "$.labels.a.production"),
    ({"labels": {"zz": {"staging": 1}}}, "label 'staging' names prompt 'zz', which has no committed version",
     "$.labels.zz.staging"),
    ({"labels": {"a": {"draft": 1}}}, "invalid label name 'draft'", "$.labels.a.draft"),
    ({"labels": {"a": {"staging": "2"}}}, '$.labels.a.staging must be a version number (an integer from 1), got "2"',
     "$.labels.a.staging"),
    ({"labels": {}, "extra": 1}, "unknown key 'extra'", "$"),
])
def test_labels_file_problems_are_located(released: GitRepo, labels: dict, message: str, path: str) -> None:
    text = json.dumps(labels, indent=2)
    parsed, problems = parse(text.encode(), "labels.json")
    if parsed is not None:
        problems = check_policy(parsed, "labels.json", text, PromptStore(released.path).versions)
    assert [(p.message, p.json_path) for p in problems] == [(message, path)]


def test_invalid_labels_file_at_head_is_an_error_not_a_guess(released: GitRepo) -> None:
    released.commit({"labels.json": "{"}, "broken")
    with pytest.raises(PromptInvalid, match="labels.json@"):
        PromptStore(released.path).resolve("a")
