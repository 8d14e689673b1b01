import json
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from promptops.cli.app import app
from promptops.testing import CaseResult, check_assertion, junit_xml
from tests.conftest import prompt_doc


@pytest.mark.parametrize(("kind", "value", "output", "passed"), [
    ("equals", "Berlin.", " Berlin.\n", True), ("equals", "Berlin", "Berlin.", False),
    ("contains", "Berlin", "It is Berlin.", True), ("contains", "berlin", "Berlin", False),
    ("icontains", "berlin", "BERLIN", True), ("not-contains", "Paris", "Berlin", True),
    ("not-contains", "Berlin", "Berlin", False), ("regex", r"\b4\b", "2+2 is 4.", True),
    ("regex", r"^\d+$", "four", False), ("starts-with", "Yes", "  Yes, it is", True),
    ("min-length", 3, "abcd", True), ("min-length", "5", "abcd", False), ("max-length", 3, "abcd", False),
    ("is-json", None, ' {"a": 1} ', True), ("is-json", None, "{a: 1}", False),
])
def test_assertions(kind, value, output, passed):
    result = check_assertion({"type": kind, "value": value}, output, latency_ms=10)
    assert result.passed is passed and result.message.startswith("expected answer")


@pytest.mark.parametrize(("limit", "passed"), [(100, True), (5, False)])
def test_latency_assertion(limit, passed):
    assert check_assertion({"type": "latency-ms", "value": limit}, "x", latency_ms=50).passed is passed


def test_bad_regex_fails_with_a_message():
    result = check_assertion({"type": "regex", "value": "("}, "x", 1)
    assert not result.passed and result.message.startswith("invalid regex '('")


def test_junit_xml_counts_failures_and_errors():
    ok = CaseResult("chat", "v2", "capital", 0, output="Berlin", latency_ms=12, prompt_tokens=9,
                    completion_tokens=2, finish_reason="stop",
                    assertions=[check_assertion({"type": "contains", "value": "Berlin"}, "Berlin", 12)])
    bad = CaseResult("chat", "v2", "math", 0, output="five",
                     assertions=[check_assertion({"type": "contains", "value": "4"}, "five", 1)])
    down = CaseResult("chat", "v2", "down", 0, error="Triton is not reachable")
    suite = ElementTree.fromstring(junit_xml([ok, bad, down]).split("\n", 1)[1]).find("testsuite")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("chat@v2", "3", "1", "1")
    assert suite.findall("testcase")[1].find("failure").get("message") == "expected answer to contain '4'"
    assert json.dumps(ok.passed) == "true"
    properties = suite.findall("testcase")[0].findall("properties/property")
    assert {p.get("name"): p.get("value") for p in properties} == {
        "prompt_tokens": "9", "completion_tokens": "2", "finish_reason": "stop"}
    assert suite.findall("testcase")[2].find("properties") is None  # no answer, no counts


def test_promptops_test_shows_the_models_token_counts(repo, echo_server, monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTOPS_MODEL", "echo")
    cases = [{"name": "echo", "vars": {"user": "a b"}, "assert": [{"type": "contains", "value": "a"}]},
             {"name": "short", "vars": {"user": "a b"}, "assert": [{"type": "equals", "value": "S a b"}]}]
    repo.commit({"prompts/support.json": prompt_doc(system="S ", tests=cases, config={"max_tokens": 2})})
    result = CliRunner().invoke(app, ["--triton-url", echo_server.grpc_url, "test", "--junit", str(tmp_path / "j.xml")])
    assert result.exit_code == 1, result.output
    assert "support@draft::echo\tPASS\t" in result.output and "\t3 + 2 (length)\tS a" in result.output
    testcase = ElementTree.parse(tmp_path / "j.xml").getroot().find("testsuite/testcase")
    assert {p.get("name"): p.get("value") for p in testcase.iter("property")} == {
        "prompt_tokens": "3", "completion_tokens": "2", "finish_reason": "length"}
