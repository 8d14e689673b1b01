"""Semantic diffs of prompt versions and their three renderings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptops.prompt.diff import diff_changes, diff_prompts, to_json, to_markdown, to_text
from promptops.prompt.schema import load_prompt_bytes
from promptops.store import PromptStore
from tests.conftest import GitRepo, prompt_doc

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def prompt(**fields: object):  # noqa: ANN201
    return load_prompt_bytes(json.dumps(prompt_doc(**fields)).encode(), "greet", "greet.json")


def test_modified_prompt() -> None:
    old = prompt(system="Be brief.")
    new = prompt(system="Be kind.", config={"temperature": 0.2, "top_p": "0.95", "max_tokens": "256"},
                 tests=[{"name": "t", "vars": {"user": "Hi"}, "assert": [{"type": "contains", "value": "Hi"}]}])
    d = diff_prompts("greet", old, new, old_label="v1", new_label="v2")
    assert (d.status, d.tests_changed) == ("modified", True)
    assert [(c.key, c.old, c.new) for c in d.config] == [("temperature", 1.0, 0.2)]
    assert [t.field for t in d.text] == ["fields.system"]
    assert d.rendered.diff.splitlines()[2:] == ["@@ -1 +1 @@", "-Be brief.", "+Be kind.Hi"]


@pytest.mark.parametrize(("old", "new", "status"), [
    (None, {"user": "x"}, "added"),
    ({"user": "x"}, None, "removed"),
    ({"user": "x"}, {"user": "x"}, "unchanged"),
])
def test_statuses(old: dict | None, new: dict | None, status: str) -> None:
    d = diff_prompts("greet", prompt(**old) if old else None, prompt(**new) if new else None)
    assert d.status == status
    assert d.changed is (status != "unchanged")


@pytest.fixture
def changed(repo: GitRepo) -> list:
    base = repo.commit({"prompts/a.json": prompt_doc(system="Be brief."), "prompts/b.json": prompt_doc()}, "base")
    repo.commit({"prompts/a.json": prompt_doc(system="Be kind.", config={"temperature": "0.2"}),
                 "prompts/b.json": None, "prompts/c.json": prompt_doc(user="Hello"),
                 "prompts/d.json": "{broken"}, "head")
    return diff_changes(PromptStore(repo.path).changes(base[:7], "main"), base_label="base", head_label="main")


def test_markdown_matches_golden(changed: list) -> None:
    assert to_markdown(changed) == (GOLDEN / "diff.md").read_text(encoding="utf-8")


def test_text_and_json(changed: list) -> None:
    text = to_text(changed)
    assert "a: modified (base -> main)\n  config:\n    max_tokens: 256 -> (unset)\n" in text
    assert "d: added (base -> main)\n  problem: invalid at head: d.json:1:2 at $: invalid JSON" in text
    assert "\033[" not in text and "\033[32m+Be kind.\033[0m" in to_text(changed, color=True)
    data = json.loads(to_json(changed))
    assert [(p["name"], p["status"]) for p in data["prompts"]] == [
        ("a", "modified"), ("b", "removed"), ("c", "added"), ("d", "added")]
    assert list(data["prompts"][0]) == sorted(data["prompts"][0]) and data["changed"] is True


def test_no_changes_in_every_format() -> None:
    assert to_text([]) == "No prompt changes.\n"
    assert to_markdown([]).endswith("No prompt changes.\n")
    assert json.loads(to_json([])) == {"changed": False, "prompts": []}


def test_contract_changes_are_lines_marked_breaking_or_compatible() -> None:
    def fmt(**properties: object) -> dict:
        schema = {"type": "object", "properties": properties, "required": ["priority"]}
        return {"type": "json_schema", "json_schema": {"name": "ticket", "schema": schema}}

    old = prompt(response_format=fmt(priority={"type": "string"}))
    new = prompt(response_format=fmt(priority={"type": "string"}, note={"type": "string"}, tags={"type": "array"}))
    d = diff_prompts("greet", prompt(response_format=fmt(priority={"type": "string"}, gone={})), new)
    assert "  contract: 1 breaking, 2 compatible\n    BREAKING    response_format.schema.properties.gone: " \
           "field `gone` removed\n    compatible  response_format.schema.properties.note: optional field `note` " \
           "added\n" in to_text([d])
    assert "| :boom: **BREAKING** | `response_format.schema.properties.gone` | field `gone` removed |" in to_markdown([d])
    assert json.loads(to_json([diff_prompts("greet", old, new)]))["prompts"][0]["contract"][0] == {
        "path": "response_format.schema.properties.note", "kind": "field-added", "breaking": False,
        "message": "optional field `note` added"}
