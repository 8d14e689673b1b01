import asyncio
import json

import pytest

from promptops.evaluation.assertions import (
    ASSERTION_TYPES,
    AssertionResult,
    Tools,
    case_score,
    check,
    check_all,
    judge_with,
    parse_judgement,
    rouge_n,
)
from promptops.prompt.model import Prompt
from promptops.prompt.schema import SCHEMA_PATH
from promptops.triton.client import Answer
from tests.conftest import prompt_doc


def run(assertion, text="", tools=None, **answer):
    return asyncio.run(check(assertion, Answer(text, **answer), {"name": "c", "vars": {}}, tools))


# The ten original assertion types keep their meaning: (type, value, answer, passes).
ORIGINAL = [
    ("equals", "Berlin.", " Berlin.\n", True), ("equals", "Berlin", "Berlin.", False),
    ("contains", "Berlin", "It is Berlin.", True), ("contains", "berlin", "Berlin", False),
    ("icontains", "berlin", "BERLIN", True), ("icontains", "paris", "Berlin", False),
    ("not-contains", "Paris", "Berlin", True), ("not-contains", "Berlin", "Berlin", False),
    ("starts-with", "Yes", "  Yes, it is", True), ("starts-with", "No", "Yes", False),
    ("regex", r"\b4\b", "2+2 is 4.", True), ("regex", r"^\d+$", "four", False), ("regex", "(", "x", False),
    ("min-length", 3, "abcd", True), ("min-length", "5", "abcd", False),
    ("max-length", 9, "abcd", True), ("max-length", 3, "abcd", False),
    ("is-json", None, ' {"a": 1} ', True), ("is-json", None, "{a: 1}", False),
    ("latency-ms", 100, "x", True), ("latency-ms", 5, "x", False), ("bogus", 1, "x", False),
]


@pytest.mark.parametrize(("kind", "value", "text", "passes"), ORIGINAL)
def test_the_original_types_keep_their_verdicts(kind, value, text, passes):
    result = run({"type": kind, "value": value}, text, total_s=0.05)
    assert (result.passed, result.score) == (passes, float(passes)) and result.reason


def test_a_bound_that_is_not_a_number_fails_instead_of_raising():
    result = run({"type": "min-length", "value": "many"}, "abc")
    assert not result.passed and result.reason == "assertion min-length needs a number, got 'many'"


SCHEMA = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}


@pytest.mark.parametrize(("assertion", "text", "passed", "needle"), [
    ({"type": "json-schema", "value": SCHEMA}, '{"city": "Berlin"}', True, "match the JSON schema"),
    ({"type": "json-schema", "value": SCHEMA}, '{"town": "Berlin"}', False, "'city' is a required property"),
    ({"type": "json-schema", "value": SCHEMA}, "Berlin", False, "it is not JSON"),
    ({"type": "json-schema", "value": {"type": 5}}, "{}", False, "invalid JSON schema"),
    ({"type": "levenshtein", "value": "Berlin"}, "Berlin.", True, "similarity 0.86, needs 0.80"),
    ({"type": "levenshtein", "value": "Berlin", "threshold": 0.9}, "Berlin.", False, "needs 0.90"),
    ({"type": "rouge-n", "value": "the capital is Berlin"}, "Berlin is the capital.", True, "ROUGE-1 1.00"),
    ({"type": "rouge-n", "value": "the capital is Berlin", "n": 2}, "Berlin is the capital.", False, "ROUGE-2 0.33"),
    ({"type": "tokens", "min": 1, "max": 10}, "x", True, "between 1 and 10 completion tokens (got 4)"),
    ({"type": "tokens", "max": 3}, "x", False, "at most 3 completion tokens (got 4)"),
    ({"type": "latency", "max": 100}, "x", True, "at most 100 ms (took 50 ms)"),
    ({"type": "latency", "value": 20}, "x", False, "took 50 ms"),
])
def test_measured_types(assertion, text, passed, needle):
    result = run(assertion, text, total_s=0.05, completion_tokens=4)
    assert result.passed is passed and needle in result.reason, result.reason
    assert 0.0 <= result.score <= 1.0


@pytest.mark.parametrize("limit", [100, 20])
def test_latency_ms_is_another_name_of_latency(limit):
    alias, latency = (run(a, "x", total_s=0.05) for a in ({"type": "latency-ms", "value": limit},
                                                           {"type": "latency", "max": limit}))
    assert (alias.type, alias.passed, alias.reason) == ("latency-ms", latency.passed, latency.reason)


@pytest.mark.parametrize("schema_file", [SCHEMA_PATH, SCHEMA_PATH.parents[1] / "promptops/prompt/prompt.schema.json"])
def test_the_schema_lists_the_catalogues_types(schema_file):
    # On failure: paste list(ASSERTION_TYPES) into $defs.assertion.properties.type.enum of the schema file.
    schema = json.loads(schema_file.read_text())
    assert schema["$defs"]["assertion"]["properties"]["type"]["enum"] == list(ASSERTION_TYPES)


def test_rouge_n_is_recall_with_clipped_counts():
    assert rouge_n("a a a", "a b") == 0.5 and rouge_n("anything", "") == 0.0


async def fake_embed(texts):
    return [[1.0, 0.0] if "Berlin" in t else [0.0, 1.0] for t in texts]


@pytest.mark.parametrize(("text", "passed", "score"), [("It is Berlin.", True, 1.0), ("Paris", False, 0.0)])
def test_similar_uses_the_injected_embeddings(text, passed, score):
    result = run({"type": "similar", "value": ["Berlin"]}, text, Tools(embed=fake_embed))
    assert (result.passed, result.score) == (passed, score) and "cosine" in result.reason


async def fake_judge(rubric, answer, case):
    return ("polite" in answer, 0.9 if "polite" in answer else 0.2, f"{case['name']}: checked {rubric!r}")


@pytest.mark.parametrize(("text", "threshold", "passed"), [
    ("a polite answer", None, True), ("rude", None, False), ("a polite answer", 0.95, False), ("rude", 0.1, True),
])
def test_llm_rubric_uses_the_injected_judge_and_its_threshold(text, threshold, passed):
    assertion = {"type": "llm-rubric", "value": "is polite", **({"threshold": threshold} if threshold else {})}
    result = run(assertion, text, Tools(judge=fake_judge))
    assert result.passed is passed and result.reason == "judge: c: checked 'is polite'"


@pytest.mark.parametrize("kind", ["similar", "llm-rubric"])
def test_model_assertions_without_a_model_fail_and_say_so(kind):
    result = run({"type": kind, "value": "x"}, "x")
    assert not result.passed and "none was given" in result.reason


CHECKS = """
def polite(answer, case):
    return "please" in answer
def graded(answer, case):
    return len(answer) / 10
async def detailed(answer, case):
    return {"pass": answer == case["vars"]["want"], "score": 0.5, "reason": "compared"}
def broken(answer, case):
    raise ValueError("boom")
"""


@pytest.mark.parametrize(("ref", "text", "passed", "score", "reason"), [
    ("../checks/c.py:polite", "please", True, 1.0, "returned True"),
    ("../checks/c.py:polite", "no", False, 0.0, "returned False"),
    ("../checks/c.py:graded", "abcdefgh", True, 0.8, "scored 0.80"),
    ("../checks/c.py:graded", "ab", False, 0.2, "scored 0.20"),
    ("../checks/c.py:detailed", "yes", True, 0.5, "compared"),
    ("../checks/c.py:broken", "x", False, 0.0, "raised ValueError: boom"),
    ("../checks/c.py:missing", "x", False, 0.0, "has no function 'missing'"),
    ("../../outside.py:polite", "please", False, 0.0, "leads out of the repository"),
])
def test_python_checks_from_the_repository(tmp_path, ref, text, passed, score, reason):
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "c.py").write_text(CHECKS)
    tools = Tools(repo=tmp_path)
    result = asyncio.run(check({"type": "python", "value": ref}, Answer(text), {"name": "c", "vars": {"want": "yes"}},
                               tools))
    assert (result.passed, result.score) == (passed, score) and reason in result.reason


def test_json_schema_from_a_file_inside_the_repository(tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "city.json").write_text('{"type": "object", "required": ["city"]}')
    result = run({"type": "json-schema", "value": "../schemas/city.json"}, '{"city": "Rome"}', Tools(repo=tmp_path))
    assert result.passed, result.reason


def result(score, passed=True, weight=1.0):
    return AssertionResult("x", None, passed, score, "", weight)


@pytest.mark.parametrize(("results", "threshold", "score", "passed"), [
    ([result(1.0), result(0.0, False)], None, 0.5, False),
    ([result(1.0, weight=3), result(0.0, False)], 0.7, 0.75, True),
    ([result(1.0), result(0.0, False, weight=0)], None, 1.0, True),
    ([result(0.8), result(0.8)], 0.9, 0.8, False),
    ([], None, 1.0, True),
])
def test_case_score_is_the_weighted_mean(results, threshold, score, passed):
    assert case_score(results, threshold) == (pytest.approx(score), passed)


def test_check_all_scores_a_case():
    verdict = asyncio.run(check_all([{"type": "contains", "value": "a", "weight": 2}, {"type": "contains", "value": "z"}],
                                    Answer("abc")))
    assert (verdict.score, verdict.passed) == (pytest.approx(2 / 3), False)


@pytest.mark.parametrize(("text", "verdict"), [
    ('{"pass": true, "score": 0.9, "reason": "ok"}', (True, 0.9, "ok")),
    ('Sure! {"pass": false, "score": 0.1, "reason": "rude"} Hope it helps', (False, 0.1, "rude")),
    ('{"pass": "yes", "reason": "fine"}', (True, 1.0, "fine")),
    ('"pass": false, "score": 2', (False, 1.0, "")),
    ('{"score": "0.3"}', (False, 0.3, "")),
    ("I think it is good.", (False, 0.0, "the judge gave no verdict: 'I think it is good.'")),
])
def test_parse_judgement_reads_small_models_loosely(text, verdict):
    assert parse_judgement(text) == verdict


def test_judge_with_renders_the_rubric_and_parses_the_model_text():
    seen = []

    async def complete(variables):
        seen.append(variables)
        return '{"pass": true, "score": 0.8, "reason": "on topic"}'

    judge = judge_with(complete, with_question=True)
    verdict = asyncio.run(judge("is on topic", "Berlin", {"vars": {"user": "Capital?"}}))
    assert verdict == (True, 0.8, "on topic")
    assert seen == [{"rubric": "is on topic", "answer": "Berlin", "user": "Question: Capital?\n"}]


def test_python_checks_can_be_turned_off(tmp_path):
    result = run({"type": "python", "value": "c.py:ok"}, "x", Tools(repo=tmp_path, python_checks=False))
    assert not result.passed and result.reason == "python checks are turned off here; c.py:ok was not run"


def contract_of(**document):
    return Prompt("p", prompt_doc(**document)).contract


CITY_FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}


@pytest.mark.parametrize(("assertion", "document", "text", "passed", "needle"), [
    ({"type": "json-schema"}, {"response_format": CITY_FORMAT}, '{"city": "Rome"}', True, "match the JSON schema"),
    ({"type": "json-schema"}, {"response_format": CITY_FORMAT}, '{"town": "Rome"}', False, "'city' is a required"),
    ({"type": "json-schema", "value": {"type": "array"}}, {"response_format": CITY_FORMAT}, "[]", True, "match"),
    ({"type": "json-schema"}, {}, "{}", False, "json-schema has no schema: give one as its value"),
])
def test_json_schema_defaults_to_the_prompts_answer_schema(assertion, document, text, passed, needle):
    result = asyncio.run(check(assertion, Answer(text), contract=contract_of(**document)))
    assert result.passed is passed and needle in result.reason, result.reason


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "required": ["city"], "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}
TOOLS = [WEATHER, {"type": "function", "function": {"name": "get_time"}}]


@pytest.mark.parametrize(("assertion", "text", "passed", "needle"), [
    ({"value": "get_weather"}, '{"name": "get_weather", "arguments": {"city": "Rome"}}', True, "a call of get_weather"),
    ({"name": "get_weather", "arguments": {"city": "Rome"}}, '{"name": "get_weather", "arguments": {"city": "Rome", '
     '"days": 2}}', True, 'with {"city": "Rome"}'),
    ({}, '{"name": "get_time", "arguments": {}}', True, "expected a tool call"),
    ({"value": "get_weather"}, '{"name": "get_time", "arguments": {}}', False, "the answer calls get_time"),
    ({"value": "get_weather"}, '{"name": "get_weather", "arguments": {}}', False, "'city' is a required property"),
    ({"value": "get_weather"}, '{"name": "get_weather", "arguments": {"city": 5}}', False, "$.arguments.city: 5 is not"),
    ({"value": "get_weather", "arguments": {"city": "Oslo"}}, '{"name": "get_weather", "arguments": {"city": "Rome"}}',
     False, '$.arguments.city is "Rome", expected "Oslo"'),
    ({"value": "get_weather", "arguments": {"days": 1}}, '{"name": "get_weather", "arguments": {"city": "Rome"}}',
     False, "$.arguments.days is missing"),
    ({"value": "get_weather"}, "It is sunny.", False, "the answer is not JSON"),
    ({"value": "book_flight"}, '{"name": "get_time", "arguments": {}}', False, "'book_flight', which is not one of"),
])
def test_tool_call_checks_the_tool_and_its_arguments(assertion, text, passed, needle):
    result = asyncio.run(check({"type": "tool-call", **assertion}, Answer(text), contract=contract_of(tools=TOOLS)))
    assert (result.passed, result.score) == (passed, float(passed)) and needle in result.reason, result.reason


def test_tool_call_needs_a_prompt_with_tools():
    result = asyncio.run(check({"type": "tool-call", "value": "get_weather"}, Answer("{}")))
    assert not result.passed and result.reason == "tool-call needs a prompt with tools: declare them in the prompt's `tools`"
