"""`promptops review --outputs` against a real Triton serving the deterministic echo model."""

import json

import pytest
from typer.testing import CliRunner

from promptops.cli.app import app
from tests.conftest import prompt_doc

CASES = [{"name": "mentions brevity", "vars": {"user": "Hi"}, "assert": [{"type": "contains", "value": "brief"}]}]


@pytest.fixture
def pr(repo, echo_server, monkeypatch):
    monkeypatch.setenv("PROMPTOPS_TRITON_URL", echo_server.grpc_url)
    monkeypatch.setenv("PROMPTOPS_MODEL", "echo")
    repo.commit({"prompts/tone.json": prompt_doc("{system} {user}", system="Be brief.", tests=CASES)}, "base")
    repo.git("checkout", "-q", "-b", "feature")
    return repo


def review(*args):
    return CliRunner().invoke(app, ["review", "--base", "main", "--head", "feature", "--outputs", *args])


def test_newly_failing_test_fails_the_review(pr):
    pr.commit({"prompts/tone.json": prompt_doc("{system} {user}", system="Be short.", tests=CASES)}, "shorter")
    result = review("--format", "text")
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == "1 prompt changed · 1 test newly failing · 1 answer changed"
    assert "  mentions brevity: pass -> fail (newly failing) (answer changed)" in result.output


def test_markdown_shows_both_answers_diffed(pr, tmp_path):
    pr.commit({"prompts/tone.json": prompt_doc("{system} {user}", system="Be brief, kind.", tests=CASES)}, "kinder")
    assert review("--output", str(tmp_path / "r.md"), "--junit", str(tmp_path / "j.xml")).exit_code == 0
    text = (tmp_path / "r.md").read_text()
    assert "| mentions brevity | pass | pass | changed | 3 + 3 → 4 + 4 |" in text  # the echo model's counts
    assert "-Be brief. Hi\n+Be brief, kind. Hi" in text
    assert 'tests="1" failures="0"' in (tmp_path / "j.xml").read_text()


def test_label_move_runs_the_new_targets_tests_on_both_versions(pr):
    pr.git("checkout", "-q", "main")
    pr.commit({"prompts/tone.json": prompt_doc("{system} {user}", system="Be brief, kind.", tests=CASES),
               "labels.json": {"labels": {"tone": {"staging": 1}}}}, "v2")
    pr.git("checkout", "-q", "-B", "feature")
    pr.commit({"labels.json": {"labels": {"tone": {"staging": 2}}}}, "stage v2")
    result = review("--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["summary"], data["prompts"]) == ("0 prompts changed · 1 label move · 0 tests newly failing · 1 answer changed", [])
    case = data["labels"][0]["cases"][0]
    assert (case["base"]["output"], case["head"]["output"], case["answer_changed"]) == ("Be brief. Hi", "Be brief, kind. Hi", True)
    assert [(case[side]["prompt_tokens"], case[side]["completion_tokens"], case[side]["finish_reason"])
            for side in ("base", "head")] == [(3, 3, "stop"), (4, 4, "stop")]


def test_label_move_to_a_newly_failing_version_fails_and_shows_both_answers(pr):
    pr.git("checkout", "-q", "main")
    pr.commit({"prompts/tone.json": prompt_doc("{system} {user}", system="Be short.", tests=CASES),
               "labels.json": {"labels": {"tone": {"staging": 1}}}}, "v2")
    pr.git("checkout", "-q", "-B", "feature")
    pr.commit({"labels.json": {"labels": {"tone": {"staging": 2}}}}, "stage v2")
    result = review()
    assert result.exit_code == 1
    assert "#### Model answers: `tone: staging v1 -> v2`\n\n| case | v1 | v2 | answer | tokens (prompt + answer) |" in result.output
    assert "| mentions brevity | pass | fail :warning: newly failing | changed | 3 + 3 → 3 + 3 |" in result.output
    assert "--- v1 answer\n+++ v2 answer\n@@ -1 +1 @@\n-Be brief. Hi\n+Be short. Hi" in result.output
