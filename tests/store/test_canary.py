"""Canary labels: the split of sticky keys, promote --canary / finish / rollback, the labels file's checks."""

from __future__ import annotations

import json

import pytest

from promptops.errors import LabelRefused, ProtectedLabel
from promptops.split import bucket, serves_canary
from promptops.store import PromptStore
from promptops.store.catalog import build
from promptops.store.labels import Canary, parse
from tests.conftest import GitRepo, prompt_doc

A = "prompts/a.json"
KEYS = [f"user-{n}" for n in range(10_000)]


@pytest.fixture
def released(repo: GitRepo) -> GitRepo:
    """a: v1..v4, v1..v3 approved; labels.json committed with production -> v2."""
    for n in (1, 2, 3, 4):
        repo.commit({A: prompt_doc(user=f"u{n}")}, f"v{n}")
    for n in (1, 2, 3):
        repo.git("tag", "-a", "-m", "ok", f"prompts/a/v{n}", f"HEAD~{4 - n}")
    repo.commit({"labels.json": {"protected": ["production"], "labels": {"a": {"production": 2}}}}, "labels")
    return repo


def labels_file(repo: GitRepo) -> dict:
    return json.loads((repo.path / "labels.json").read_text())["labels"]["a"]


@pytest.mark.parametrize("weight", [10, 2.5, 50])
def test_a_canary_serves_its_weight_of_distinct_keys(weight: float) -> None:
    served = sum(serves_canary(Canary(4, weight), "support", "production", key) for key in KEYS)
    assert abs(served / len(KEYS) * 100 - weight) <= 1.5


def test_a_key_keeps_its_version_and_raising_the_weight_only_moves_keys_to_the_canary() -> None:
    small, large = Canary(4, 10), Canary(4, 50)
    assert all(len({serves_canary(small, "a", "production", key) for _ in range(100)}) == 1 for key in KEYS[:20])
    before = {key for key in KEYS if serves_canary(small, "a", "production", key)}
    after = {key for key in KEYS if serves_canary(large, "a", "production", key)}
    assert before < after and not serves_canary(None, "a", "production", "ada")


@pytest.mark.parametrize(("other", "same"), [(("a", "production", "ada"), True), (("a", "staging", "ada"), False),
                                             (("b", "production", "ada"), False), (("a", "production", "bob"), False)])
def test_a_bucket_is_per_prompt_label_and_key(other: tuple[str, str, str], same: bool) -> None:
    assert 0 <= bucket(*other) < 100
    assert (bucket("a", "production", "ada") == bucket(*other)) is same


def test_promote_canary_then_raise_it_then_finish(released: GitRepo) -> None:
    store = PromptStore(released.path)
    assert store.promote("a@3", "production", commit=True, canary=10).describe() == \
        "a: production v2, canary v3 at 10% (was 0%)"
    assert labels_file(released) == {"production": {"version": 2, "canary": {"version": 3, "weight": 10}}}
    assert store.resolve("a").version.number == 2 and store.labels().canary("a", "production") == Canary(3, 10)
    assert store.promote("a@3", "production", commit=True, canary=50).describe().endswith("at 50% (was 10%)")
    assert released.git("log", "-1", "--format=%B").splitlines()[-3:-1] == ["Canary: v3 at 50%",
                                                                          "Previous-canary: v3 at 10%"]
    change = store.promote("a@3", "production", commit=True)
    assert change.describe() == "a: production v2 -> v3 (canary finished)"
    assert labels_file(released) == {"production": 3}
    assert released.git("status", "--porcelain") == ""


def test_rollback_ends_the_canary_then_moves_the_label(released: GitRepo) -> None:
    store = PromptStore(released.path)
    store.promote("a@1", "production", commit=True)
    store.promote("a@3", "production", commit=True, canary=10)
    assert store.rollback("a", commit=True).describe() == "a: production v1 (canary v3 ended)"
    assert released.git("log", "-1", "--format=%s") == "End canary v3 of a production (back on v1)"
    assert labels_file(released) == {"production": 1}
    assert store.rollback("a", commit=True).describe() == "a: production v1 -> v2"


def test_promoting_another_version_drops_the_canary(released: GitRepo) -> None:
    store = PromptStore(released.path)
    store.promote("a@3", "production", commit=True, canary=10)
    assert store.promote("a@1", "production", commit=True).describe() == "a: production v2 -> v1 (canary v3 dropped)"
    assert released.git("log", "-1", "--format=%s") == "Promote a v1 to production, dropping canary v3 at 10%"
    assert [v for _, v in store.label_history("a", "production")] == [2, 1]


@pytest.mark.parametrize(("ref", "label", "weight", "error", "message"), [
    ("a@4", "production", 10, ProtectedLabel, "production is a protected label and a v4 cannot be its canary: "
                                              "it is not approved"),
    ("a@2", "production", 10, LabelRefused, "a v2 is the version production already serves"),
    ("a@4", "staging", 10, LabelRefused, "staging of 'a' points to no version yet"),
    ("a@3", "production", 100, LabelRefused, "a canary weight is a percentage above 0 and below 100, got 100"),
])
def test_promote_canary_refusals(released: GitRepo, ref: str, label: str, weight: float, error: type,
                                 message: str) -> None:
    with pytest.raises(error, match=message):
        PromptStore(released.path).promote(ref, label, commit=True, canary=weight)
    assert released.git("log", "-1", "--format=%s") == "labels"


def test_an_unprotected_label_takes_an_unapproved_canary(released: GitRepo) -> None:
    store = PromptStore(released.path)
    store.promote("a@3", "staging", commit=True)
    assert store.promote("a@4", "staging", canary=25).new_canary == Canary(4, 25)  # working tree only
    assert labels_file(released)["staging"] == {"version": 3, "canary": {"version": 4, "weight": 25}}
    assert store.rollback("a", "staging").describe() == "a: staging v3 (canary v4 ended)"


@pytest.mark.parametrize(("canary", "message", "path"), [
    ({"version": 4, "weight": 10}, "protected label 'production' runs a canary of a v4, but it is not approved",
     "$.labels.a.production.canary.version"),
    ({"version": 2, "weight": 10}, "the canary of production is v2, the version production already serves",
     "$.labels.a.production.canary.version"),
    ({"version": 9, "weight": 10}, "a has no version 9 (the newest is 4)", "$.labels.a.production.canary.version"),
    ({"version": 3, "weight": 100}, "$.labels.a.production.canary.weight must be a percentage above 0 and below "
                                    "100, got 100", "$.labels.a.production.canary.weight"),
    ({"version": 3, "weight": 10, "share": 1}, "unknown key 'share' in $.labels.a.production.canary",
     "$.labels.a.production.canary"),
])
def test_a_hand_edited_canary_is_checked_and_located(released: GitRepo, canary: dict, message: str,
                                                     path: str) -> None:
    text = json.dumps({"labels": {"a": {"production": {"version": 2, "canary": canary}}}}, indent=2)
    problems = PromptStore(released.path).check_labels(text.encode(), "labels.json")
    assert [(p.message, p.json_path) for p in problems] == [(message, path)] and problems[0].line is not None


def test_dump_parse_round_trip_keeps_plain_labels_as_ints() -> None:
    entries = {"production": {"version": 2, "canary": {"version": 3, "weight": 12.5}}, "staging": 3}
    labels = parse(json.dumps({"labels": {"a": entries}}).encode())[0]
    assert (labels.target("a", "production"), labels.canary("a", "production")) == (2, Canary(3, 12.5))
    assert json.loads(labels.dump())["labels"]["a"] == entries and b'"staging": 3\n' in labels.dump()
    assert parse(labels.dump())[0].canaries == labels.canaries
    assert json.loads(labels.moved("a", "production", 3).dump())["labels"]["a"] == {"production": 3, "staging": 3}
    assert json.loads(labels.without_canary("a", "production").dump())["labels"]["a"] == {"production": 2,
                                                                                          "staging": 3}
    assert parse(b'{"labels": {"a": {"staging": {"version": 3}}}}')[0].dump() == parse(
        b'{"labels": {"a": {"staging": 3}}}')[0].dump()


def test_the_catalog_knows_the_canary_and_has_its_version_warm(released: GitRepo) -> None:
    store = PromptStore(released.path)
    store.promote("a@3", "production", commit=True, canary=10)
    catalog = build(store)
    assert catalog.canary("a", "production") == Canary(3, 10) and catalog.canary("a", "staging") is None
    assert catalog.remembered("a@3", "approved", False).version.number == 3
    store.revoke("a", 3, "wrong answers")
    assert build(store).canary("a", "production") is None  # a revoked canary is not served on a protected label


def test_versions_written_as_whole_floats_are_read_as_numbers() -> None:
    document = {"labels": {"a": {"production": {"version": 1.0, "canary": {"version": 2.0, "weight": 5}}}}}
    labels, problems = parse(json.dumps(document).encode(), "labels.json")
    assert problems == [] and (labels.target("a", "production"), labels.canary("a", "production")) == (1, Canary(2, 5))


def test_any_caller_text_is_a_sticky_key() -> None:
    assert 0 <= bucket("a", "production", "\ud800 lone surrogate") < 100  # OpenAI `user` is caller JSON
