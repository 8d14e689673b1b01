"""The evaluation commands without a model server: `validate` on datasets, `runs`, and `test`'s refusals."""

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from promptops.cli.app import app
from promptops.evaluation.runs import Attempt, CaseRecord, RunRecord, save_run

GREET = {"config": {}, "user": "", "template": "{user}", "tests": [{"dataset": "datasets/greet.jsonl"}]}


def run(*args):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def greet(repo):
    repo.write({"prompts/greet.json": GREET, "prompts/datasets/greet.jsonl": '{"user": "hi", "__expected": "hi"}\n'})
    return repo


def test_validate_checks_datasets_and_sees_them_change_under_the_cache(greet):
    assert run("validate").output == "1 file(s) checked: 0 error(s), 0 warning(s)\n"
    greet.write({"prompts/datasets/greet.jsonl": '{"usr": "hi", "__expected": "hi"}\n'})
    result = run("validate")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: prompts/datasets/greet.jsonl:1 at $: no value for {user} of prompt 'greet' (add a key named user "
        "(or put it under `vars`), or give it a value under the entry's `vars` in greet.json)",
        "Warning: prompts/datasets/greet.jsonl:1 at $: 'usr' is not a placeholder or field of prompt 'greet' "
        "(did you mean 'user'?)",
        "1 file(s) checked: 1 error(s), 1 warning(s)"]


def test_validate_locates_a_missing_dataset_at_its_entry(greet):
    greet.write({"prompts/datasets/greet.jsonl": None})
    assert "Error: prompts/greet.json:7 at $.tests[0].dataset: dataset file prompts/datasets/greet.jsonl does not " \
           "exist" in run("validate").output


def saved(repo, version, passed, label=None):
    attempt = Attempt("hi", 5.0, prompt_tokens=1, completion_tokens=1, passed=passed, score=float(passed))
    record = RunRecord("greet", version, "echo", label=label, started_at=datetime(2026, 3, 1, tzinfo=UTC),
                       cases=[CaseRecord("hi", attempts=[attempt])])
    return save_run(record, repo.path).stem


def test_runs_lists_saved_runs_newest_first(greet):
    old, new = saved(greet, "v1", True, "production"), saved(greet, "draft", False)
    assert run("runs", "greet").output.splitlines() == [
        "run\tprompt\tlabel\tmodel\tpassed\tpass rate",
        f"{new}\tgreet@draft\t\techo\t0/1\t0%", f"{old}\tgreet@v1\tproduction\techo\t1/1\t100%"]
    rows = json.loads(run("runs", "--format", "json", "-n", "1").output)
    assert [(r["id"], r["file"], r["pass_rate"]) for r in rows] == [(new, f".promptops/runs/{new}.json", 0.0)]
    assert run("runs", "other").output == "No saved runs of other in .promptops/runs/.\n"


@pytest.mark.parametrize(("args", "output"), [
    (["--compare", "production"], "Error: prompt 'greet' has no committed versions"),
    (["--format", "xml"], "Invalid value for --format: use text or json"),
])
def test_test_refuses_before_running_anything(greet, args, output):
    result = run("test", "greet", *args)
    assert result.exit_code in (1, 2) and output in result.output
