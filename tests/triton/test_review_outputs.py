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


def captures(path, *rows):
    """A capture file: (prompt, vars) rows as promptops.capture writes them."""
    path.write_text("".join(json.dumps({"vars": variables, "__captured": {"prompt": prompt, "request_id": f"r{n}"}})
                            + "\n" for n, (prompt, variables) in enumerate(rows)))
    return str(path)


def test_replay_shows_the_captured_answers_that_changed(pr, tmp_path):
    pr.commit({"prompts/tone.json": prompt_doc("{system} {user}", system="Be brief and kind.", tests=CASES)}, "kind")
    file = captures(tmp_path / "c.jsonl", ("tone", {"user": "Hi"}), ("other", {"user": "x"}), ("tone", {"user": "Yo"}))
    result = review("--replay", file, "--format", "text")
    assert result.exit_code == 0, result.output
    assert "0 tests newly failing · 1 answer changed · 2 of 2 replayed answers changed" in result.output.splitlines()[0]
    assert (f"Replayed 2 captured requests from {file} on base and head: 2 of 2 replayed answers changed; "
            "rows left out: 1 of prompts not changed here.") in result.output
    assert f"  {file}:1 (request r0): \"Hi\"\n    base: Be brief. Hi\n    head: Be brief and kind. Hi" in result.output


def test_replay_reports_a_row_that_does_not_render_under_head(pr, tmp_path):
    pr.git("checkout", "-q", "main")
    pr.commit({"prompts/greet.json": prompt_doc("{user} in {lang}", lang="")}, "greet")
    pr.git("checkout", "-q", "-B", "feature")
    pr.commit({"prompts/greet.json": prompt_doc("Hello {user}")}, "no more lang")
    file = captures(tmp_path / "c.jsonl", ("greet", {"user": "Hi", "lang": "de"}), ("greet", {"user": "Yo"}))
    text = review("--replay", file).output
    assert "· 1 of 1 replayed answer changed · 1 replayed input does not render under head**" in text
    assert (f"> :warning: `{file}:1` does not render under head: it sets {{lang}}, which is no placeholder or "
            'field of greet at head (input: "Hi" with lang="de")') in text
    assert "```diff\n--- base answer\n+++ head answer\n@@ -1 +1 @@\n-Yo in \n+Hello Yo\n```" in text


def test_replay_sample_takes_the_same_rows_every_time(pr, tmp_path):
    pr.commit({"prompts/tone.json": prompt_doc("{system} {user}", system="Be brief and kind.", tests=CASES)}, "kind")
    file = captures(tmp_path / "c.jsonl", *[("tone", {"user": f"q{n}"}) for n in range(20)])
    runs = [json.loads(review("--replay", file, "--sample", "3", "--format", "json").output) for _ in range(2)]
    assert runs[0]["replay"] | {"file": ""} == {"file": "", "rows": 20, "candidates": 20, "replayed": 3, "skipped": 0,
                                                 "unreplayable": 0, "anonymous": 0, "sample": 3, "answers": 3,
                                                 "changed": 3, "not_rendering": 0}
    assert [r["source"] for r in runs[0]["prompts"][0]["replay"]] == [r["source"] for r in runs[1]["prompts"][0]["replay"]]


def chat_prompt(system):
    return {"model": "smollm2-135m", "config": {"temperature": 0, "max_tokens": 24}, "system": system,
            "messages": [{"role": "system", "content": "{system}"}, {"history": True},
                         {"role": "user", "content": "{user}"}]}


@pytest.mark.vllm
def test_replay_on_the_real_model_shows_the_answers_a_new_system_prompt_changes(repo, vllm_server, monkeypatch,
                                                                                tmp_path):
    monkeypatch.setenv("PROMPTOPS_TRITON_URL", vllm_server.grpc_url)
    repo.commit({"prompts/chat.json": chat_prompt("You are a helpful assistant. Answer in one short sentence.")})
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit({"prompts/chat.json": chat_prompt("You are a pirate. Answer like a pirate and start with Arr.")})
    questions = ("What is the capital of Germany?", "What is 2+2?", "Name a colour.")
    file = captures(tmp_path / "c.jsonl", *[("chat", {"user": q}) for q in questions])
    data = json.loads(review("--replay", file, "--format", "json").output)
    rows = data["prompts"][0]["replay"]
    assert not [r for r in rows if r["base"]["error"] or r["head"]["error"]], rows
    assert data["replay"]["answers"] == 3 and data["replay"]["changed"] == sum(r["changed"] for r in rows) >= 1
    assert all(r["head"]["output"] != r["base"]["output"] for r in rows if r["changed"]), rows
    assert "Berlin" in rows[0]["base"]["output"]
