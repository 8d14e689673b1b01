import asyncio
import json

import pytest

from promptops.review import MARKER, build_review, to_json, to_markdown, to_text
from promptops.store import PromptStore
from tests.conftest import prompt_doc


@pytest.fixture
def pr(repo):
    """main: keep, drop, tweak; the PR branch modifies tweak, adds fresh, removes drop, breaks keep."""
    repo.commit({"prompts/keep.json": prompt_doc(), "prompts/drop.json": prompt_doc(),
                 "prompts/tweak.json": prompt_doc(system="Be brief.", config={"temperature": "0.2"})}, "base")
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit({"prompts/tweak.json": prompt_doc(system="Be very brief.", config={"temperature": 0.7}),
                 "prompts/fresh.json": prompt_doc(), "prompts/drop.json": None,
                 "prompts/keep.json": '{"config": {}, "template": "{missing}"}'}, "feature")
    return PromptStore(repo.path)


def review(store):
    return asyncio.run(build_review(store, "main", "feature"))


def test_review_lists_every_change_and_fails_on_invalid_head(pr):
    report = review(pr)
    assert {p.diff.name: p.diff.status for p in report.prompts} == {
        "drop": "removed", "fresh": "added", "keep": "modified", "tweak": "modified"}
    assert report.failed and report.invalid == 1
    assert report.summary() == "4 prompts changed · 1 invalid"


def test_markdown_has_marker_config_table_and_error(pr):
    text = to_markdown(review(pr))
    assert text.startswith(MARKER + "\n## promptops review: `main` → `feature`")
    assert "| `temperature` | 0.2 | 0.7 |" in text
    assert "> :x: **invalid** `prompts/keep.json` $.template: unknown placeholder {missing}" in text


def test_markdown_is_truncated_to_the_limit(pr):
    text = to_markdown(review(pr), limit=400)
    assert len(text) <= 400 and text.rstrip().endswith("the full report is in the job artifacts.")


def test_json_and_text_formats(pr):
    data = json.loads(to_json(review(pr)))
    assert (data["failed"], data["invalid"], [p["name"] for p in data["prompts"]]) == (
        True, 1, ["drop", "fresh", "keep", "tweak"])
    assert to_text(review(pr)).startswith("4 prompts changed · 1 invalid\n")
