"""`promptops test` with the evaluation catalogue against a real Triton: echo (twice) and the embeddings model.

The echo model answers the rendered prompt itself, so with the template "{user}" every case's answer
is its `user` variable: each assertion type gets an answer that passes and one that fails.
"""

import json
import re

import pytest
from typer.testing import CliRunner

from promptops.cli.app import app
from promptops.evaluation.runs import list_runs, load_run
from promptops.triton import launcher as triton
from tests.conftest import prompt_doc

SCHEMA = {"type": "object", "required": ["city"]}
FLAKY = '''from pathlib import Path


def alternate(answer, case):
    """Passes on every other call of a case: a measured pass rate of 50%."""
    counter = Path(__file__).with_name(f"count-{case['name']}-{case['model']}")
    calls = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(calls + 1))
    return calls % 2 == 0


def mentions_berlin(answer, case):
    return {"pass": "Berlin" in answer, "score": 1.0 if "Berlin" in answer else 0.0, "reason": "looked for Berlin"}
'''


def case(name, user, *assertions, **extra):
    return {"name": name, "vars": {"user": user}, "assert": list(assertions), **extra}


def echo_prompt(*cases, **fields):
    return prompt_doc("{user}", model="echo", config={"temperature": 0}, tests=list(cases), **fields)


@pytest.fixture
def served(repo, evaluation_server, monkeypatch):
    monkeypatch.setenv("PROMPTOPS_TRITON_URL", evaluation_server.grpc_url)
    monkeypatch.setenv("PROMPTOPS_MODEL", "echo")
    repo.write({"prompts/checks/flaky.py": FLAKY})
    return repo


def run_test(*args):
    result = CliRunner().invoke(app, ["test", *args])
    return result, (json.loads(result.output) if "json" in args else result.output)


def verdicts(report):
    return {c["case"] + ("" if c["model"] == "echo" else f"@{c['model']}"): c["passed"] for c in report["cases"]}


def test_every_assertion_type_passes_and_fails(served):
    cases = [
        case("json ok", '{"city": "Berlin"}', {"type": "json-schema", "value": SCHEMA}),
        case("json bad", '{"town": "Berlin"}', {"type": "json-schema", "value": SCHEMA}),
        case("close", "Berlin.", {"type": "levenshtein", "value": "Berlin"}),
        case("far", "Paris", {"type": "levenshtein", "value": "Berlin"}),
        case("recalls", "Berlin is the capital", {"type": "rouge-n", "value": "the capital is Berlin"}),
        case("forgets", "Berlin is the capital", {"type": "rouge-n", "value": "the capital is Berlin", "n": 2}),
        case("python ok", "Berlin", {"type": "python", "value": "checks/flaky.py:mentions_berlin"}),
        case("python bad", "Paris", {"type": "python", "value": "checks/flaky.py:mentions_berlin"}),
        case("few tokens", "a b c", {"type": "tokens", "max": 5}),
        case("many tokens", "a b c", {"type": "tokens", "min": 1, "max": 2}),
        case("fast", "a", {"type": "latency", "max": 60000}),
        case("slow", "a", {"type": "latency", "min": 60000}),
        case("similar", "The cat sat on the mat.", {"type": "similar", "value": "A cat sat on the mat."}),
        case("unrelated", "Quarterly tax filing deadlines.", {"type": "similar", "value": "A cat sat on a rug."}),
    ]
    served.write({"prompts/kinds.json": echo_prompt(*cases)})
    result, report = run_test("kinds", "--format", "json")
    assert result.exit_code == 1
    assert verdicts(report) == {c["name"]: i % 2 == 0 for i, c in enumerate(cases)}, report["cases"]
    reasons = {c["case"]: c["assertions"][0]["reason"] for c in report["cases"]}
    assert reasons["many tokens"] == "expected between 1 and 2 completion tokens (got 3)"
    assert re.fullmatch(r"expected answer similar to .* \(cosine 0\.\d\d, needs 0\.75\)", reasons["unrelated"])


def test_jsonl_and_csv_datasets_run_end_to_end(served):
    served.write({
        "prompts/datasets/greet.jsonl": '{"user": "hello there", "__expected": "contains: hello"}\n\n'
                                        '{"vars": {"user": "bye"}, "assert": [{"type": "equals", "value": "bye!"}]}\n',
        "prompts/datasets/greet.csv": 'user,__expected,__name\n"hi, you!",icontains: HI,comma\nyo,equals: no,\n',
        "prompts/greet.json": echo_prompt({"dataset": "datasets/greet.jsonl"},
                                          {"dataset": "datasets/greet.csv", "name": "csv",
                                           "assert": [{"type": "max-length", "value": 20}]})})
    result, report = run_test("greet", "--format", "json")
    assert result.exit_code == 1
    assert [(c["case"], c["output"], c["passed"]) for c in report["cases"]] == [
        ("greet:1", "hello there", True), ("greet:3", "bye", False), ("comma", "hi, you!", True), ("csv:3", "yo", False)]


def test_a_two_model_matrix_from_the_prompt_or_the_command_line(served):
    served.write({"prompts/pair.json": echo_prompt(case("echoes", "a b", {"type": "equals", "value": "a b"}),
                                                   models=["echo", "echo-b"])})
    result, text = run_test("pair")
    assert result.exit_code == 0, text
    rows = [line.split("\t") for line in text.splitlines()[:3]]
    assert rows[0] == ["prompt", "model", "cases", "passed", "pass rate", "p50 ms", "tokens (prompt + answer)", "errors"]
    assert [(r[0], r[1], r[4], r[6]) for r in rows[1:]] == [("pair@draft", "echo", "100%", "2 + 2"),
                                                             ("pair@draft", "echo-b", "100%", "2 + 2")]
    result, report = run_test("pair", "--model", "echo-b", "--format", "json")
    assert [(r["model"], r["cases"], r["prompt_tokens"]) for r in report["runs"]] == [("echo-b", 1, 2)]


def test_repeat_measures_a_pass_rate_against_min_pass_rate(served):
    flaky = {"type": "python", "value": "checks/flaky.py:alternate"}
    served.write({"prompts/flaky.json": echo_prompt(case("half is enough", "x", flaky, repeat=2, min_pass_rate=0.5),
                                                    case("needs most", "x", flaky, repeat=2, min_pass_rate=0.75))})
    result, report = run_test("flaky", "--repeat", "2", "--format", "json")  # --repeat multiplies: 4 attempts each
    assert [(c["case"], c["attempts"], c["pass_rate"], c["passed"]) for c in report["cases"]] == [
        ("half is enough", 4, 0.5, True), ("needs most", 4, 0.5, False)]
    assert result.exit_code == 1 and report["runs"][0]["attempt_pass_rate"] == 0.5


def test_runs_are_saved_and_exported_as_junit_and_html(served, tmp_path):
    served.write({"prompts/saved.json": echo_prompt(case("hello", "hello <b>", {"type": "contains", "value": "hi"}))})
    result, text = run_test("saved", "--junit", str(tmp_path / "j.xml"), "--html", str(tmp_path / "r.html"))
    assert result.exit_code == 1 and "FAIL saved@draft::hello: expected answer to contain 'hi'; answer: 'hello <b>'" in text
    [info] = list_runs(served.path, "saved")
    run = load_run(served.path, info.id)
    assert (run.version, run.model, run.commit, run.cases[0].attempts[0].answer) == ("draft", "echo", None, "hello <b>")
    assert f"Saved 1 run: {info.id}" in text
    assert 'name="saved@draft" tests="1" failures="1"' in (tmp_path / "j.xml").read_text()
    assert "hello &lt;b&gt;" in (tmp_path / "r.html").read_text()
    listed = CliRunner().invoke(app, ["runs", "saved"]).output.splitlines()
    assert listed[1].split("\t") == [info.id, "saved@draft", "", "echo", "0/1", "0%"]


def test_compare_reports_what_regressed_since_a_release_label(served):
    brevity = case("mentions brevity", "Hi", {"type": "contains", "value": "brief"})
    steady = case("steady", "Hi", {"type": "contains", "value": "Hi"})
    document = prompt_doc("{system} {user}", model="echo", system="Be brief.", tests=[brevity, steady])
    served.commit({"prompts/tone.json": document, "labels.json": {"labels": {"tone": {"staging": 1}}}})
    served.write({"prompts/tone.json": {**document, "system": "Be short."}})
    result, text = run_test("tone", "--compare", "staging")
    assert result.exit_code == 1, text
    assert "tone on echo: v1 (staging) -> draft: 1 broken · 1 same\n  broken mentions brevity: pass rate 100% -> 0%, score 1.00 -> 0.00\n" in text
    result, report = run_test("tone", "--compare", "staging", "--format", "json")
    assert [(c["summary"], c["regressed"]) for c in report["comparisons"]] == [("1 broken · 1 same", True)]
    assert [(r["version"], r["label"], r["baseline"]) for r in report["runs"]] == [
        ("draft", None, False), ("v1", "staging", True)]


@pytest.mark.vllm
def test_llm_rubric_is_judged_by_the_judge_prompt_on_the_embedded_model(repo, judge_server, monkeypatch):
    monkeypatch.setenv("PROMPTOPS_TRITON_URL", judge_server.grpc_url)
    rubric = {"type": "llm-rubric", "value": "The answer is about cats."}
    repo.write({"prompts/judge.json": (triton.REPO_ROOT / "prompts" / "judge.json").read_text(),
                "prompts/pets.json": echo_prompt(case("cats", "Cats purr when they are happy.", rubric),
                                                 case("dogs", "Dogs bark at the mailman.", rubric))})
    result, report = run_test("pets", "--format", "json")
    assert verdicts(report) == {"cats": True, "dogs": False}, report["cases"]
    assert all(c["assertions"][0]["reason"].startswith("judge") for c in report["cases"])
