import asyncio
import json
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from promptops.cli.app import app
from promptops.evaluation.assertions import Tools
from promptops.evaluation.reports import html_report
from promptops.evaluation.runner import READ_AHEAD, RunSummary, Target, junit_xml, models_for, run_tests
from promptops.evaluation.runs import Attempt, CaseRecord, RunRecord
from promptops.prompt.model import Prompt
from promptops.triton.client import Answer
from tests.conftest import prompt_doc


class Echo:
    """A client answering the prompt itself (one token a word), counting requests in flight."""

    def __init__(self):
        self.in_flight = self.most = 0
        self.read_ahead = []  # rows read but not yet answered, at each request

    async def stream(self, model, prompt, sampling=None, *, logprobs=False, timeout_s=None):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            yield prompt
            yield Answer(prompt, len(prompt.split()), len(prompt.split()), "stop")
        finally:
            self.in_flight -= 1


class Rows:
    """A dataset stream that counts the rows read."""

    def __init__(self, count):
        self.count, self.read = count, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        for i in range(self.count):
            self.read += 1
            yield json.dumps({"user": f"row {i}", "__expected": f"equals: row {i}"}).encode() + b"\n"


def test_run_tests_streams_a_dataset_with_bounded_concurrency_in_file_order(tmp_path):
    client, rows = Echo(), Rows(200)
    answered = []
    prompt = Prompt("big", prompt_doc("{user}", tests=[{"dataset": "datasets/big.jsonl"}]))
    target = Target(prompt, opener=lambda rel: rows)

    def on_case(run, case):
        answered.append(case.name)
        client.read_ahead.append(rows.read - len(answered))

    [run] = asyncio.run(run_tests(client, [target], "echo", concurrency=3, tools=Tools(tmp_path), on_case=on_case))
    assert (len(run.cases), run.pass_rate, client.most) == (200, 1.0, 3)
    assert [c.name for c in run.cases] == [f"big:{i}" for i in range(1, 201)]
    assert max(client.read_ahead) <= 3 * READ_AHEAD


@pytest.mark.parametrize(("cli", "document", "expected"), [
    ((), {}, ("default",)), ((), {"model": "a"}, ("a",)), ((), {"model": "a", "models": ["b", "c"]}, ("b", "c")),
    (("d", "d"), {"models": ["b"]}, ("d",)),
])
def test_models_come_from_the_command_line_then_the_prompt(cli, document, expected):
    target = Target(Prompt("p", prompt_doc(**document)))
    assert models_for(target, cli, "default") == expected


def test_junit_xml_names_the_model_and_keeps_the_models_token_counts():
    ok = CaseRecord("capital", attempts=[Attempt("Berlin", 12, None, 9, 2, "stop", passed=True, score=1.0)])
    runs = [RunRecord("chat", "v2", model, cases=[ok]) for model in ("a", "b")]
    suites = ElementTree.fromstring(junit_xml(runs).split("\n", 1)[1]).findall("testsuite")
    assert [s.get("name") for s in suites] == ["chat@v2 on a", "chat@v2 on b"]
    properties = suites[0].findall("testcase/properties/property")
    assert {p.get("name"): p.get("value") for p in properties} == {
        "prompt_tokens": "9", "completion_tokens": "2", "finish_reason": "stop"}


def test_promptops_test_shows_the_models_token_counts(repo, echo_server, monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTOPS_MODEL", "echo")
    cases = [{"name": "echo", "vars": {"user": "a b"}, "assert": [{"type": "contains", "value": "a"}]},
             {"name": "short", "vars": {"user": "a b"}, "assert": [{"type": "equals", "value": "S a b"}]}]
    repo.commit({"prompts/support.json": prompt_doc(system="S ", tests=cases, config={"max_tokens": 2})})
    result = CliRunner().invoke(app, ["--triton-url", echo_server.grpc_url, "test", "--junit", str(tmp_path / "j.xml")])
    assert result.exit_code == 1, result.output
    row = result.output.splitlines()[1].split("\t")
    assert (row[:5], row[6:]) == (["support@draft", "echo", "2", "1", "50%"], ["6 + 4", ""])
    assert "FAIL support@draft::short: expected answer to equal 'S a b'; answer: 'S a'" in result.output
    testcase = ElementTree.parse(tmp_path / "j.xml").getroot().find("testsuite/testcase")
    assert {p.get("name"): p.get("value") for p in testcase.iter("property")} == {
        "prompt_tokens": "3", "completion_tokens": "2", "finish_reason": "length"}


def test_a_run_counts_the_answers_that_parse_and_satisfy_the_prompts_contract(tmp_path):
    schema = {"type": "object", "required": ["city"]}
    cases = [{"name": name, "vars": {"user": user}, "assert": [{"type": "json-schema"}]}
             for name, user in [("ok", '{"city": "Rome"}'), ("no-city", '{"town": "Rome"}'), ("prose", "Rome")]]
    document = prompt_doc(response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
                          tests=cases)
    [run] = asyncio.run(run_tests(Echo(), [Target(Prompt("city", document))], "echo", tools=Tools(tmp_path)))
    assert [(a.parsed, a.valid, a.passed) for c in run.cases for a in c.attempts] == [
        (True, True, True), (True, False, False), (False, False, False)]
    assert RunSummary.of(run).to_dict()["structured"] == {"answers": 3, "parsed": 2, "valid": 1,
                                                          "parse_rate": 2 / 3, "valid_rate": 1 / 3}
    assert "structured answers parsed 2/3 (67%), valid 1/3 (33%)" in html_report(run)


def test_promptops_test_shows_the_share_of_answers_that_parse_and_validate(repo, echo_server, monkeypatch):
    monkeypatch.setenv("PROMPTOPS_MODEL", "echo")
    schema = {"type": "object", "required": ["a"]}
    cases = [{"name": name, "vars": {"user": f"x {planted}"}, "assert": [{"type": "json-schema"}]}
             for name, planted in (("ok", '{"a": 1}'), ("missing", '{"b": 2}'))]
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    repo.commit({"prompts/support.json": prompt_doc(tests=cases, response_format=fmt)})
    result = CliRunner().invoke(app, ["--triton-url", echo_server.grpc_url, "test"])
    assert result.exit_code == 1, result.output
    assert "support@draft on echo: structured answers parsed 2/2 (100%), valid 1/2 (50%)" in result.output
