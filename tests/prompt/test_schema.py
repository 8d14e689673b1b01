import json

import pytest

from promptops.prompt.model import NEW_JSON_PROMPT, NEW_PROMPT, SEED_TEMPLATE
from promptops.prompt.schema import check_bytes, load_prompt_bytes
from tests.conftest import prompt_doc


def problems_of(doc_or_bytes, name="p"):
    data = doc_or_bytes if isinstance(doc_or_bytes, bytes) else json.dumps(doc_or_bytes, indent=2).encode()
    return check_bytes(data, name, f"prompts/{name}.json")


def test_seed_template_validates_unchanged_and_normalises_numbers():
    prompt = load_prompt_bytes(json.dumps(SEED_TEMPLATE).encode(), "seed", "prompts/seed.json")
    assert prompt.document == SEED_TEMPLATE
    assert prompt.config == {"temperature": 1.0, "top_p": 0.95, "max_tokens": 256}


@pytest.mark.parametrize("config", [
    {"temperature": 0}, {"temperature": "0.7", "top_k": "40"}, {"top_p": 1}, {"stop": ["\n", "###"]},
    {"seed": 7, "min_tokens": 1, "max_tokens": 32768}, {"presence_penalty": -2, "frequency_penalty": "2"},
    {"repetition_penalty": 1.1, "min_p": 0.05}, {"stop": "END", "ignore_eos": False},
])
def test_valid_config_values(config):
    prompt, problems = problems_of(prompt_doc(config=config))
    assert prompt is not None, problems


@pytest.mark.parametrize(("doc", "path", "needle"), [
    (prompt_doc(config={"temperature": 3}), "$.config.temperature", "must be a number from 0 to 2"),
    (prompt_doc(config={"temperature": "hot"}), "$.config.temperature", "must be a number"),
    (prompt_doc(config={"temperature": "nan"}), "$.config.temperature", "must be a number"),
    (prompt_doc(config={"top_p": 0}), "$.config.top_p", "exclusive"),
    (prompt_doc(config={"max_tokens": 0}), "$.config.max_tokens", "integer from 1 to 32768"),
    (prompt_doc(config={"max_tokens": "12.5"}), "$.config.max_tokens", "integer"),
    (prompt_doc(config={"stop": 5}), "$.config.stop", "must be a string"),
    (prompt_doc(config={"temprature": 1}), "$.config.temprature", "unknown key 'temprature'"),
    (prompt_doc(system=5), "$.system", "must be a string"),
    ({"config": {}}, "$", "'template' is required"),
    (prompt_doc(**{"bad key": "x"}), '$["bad key"]', "unknown key 'bad key'"),
    (prompt_doc(tests=[{"name": "t", "assert": [{"type": "containz", "value": "x"}]}]), "$.tests[0].assert[0].type",
     "must be one of"),
    (prompt_doc(template="{nope}"), "$.template", "unknown placeholder {nope}"),
    (prompt_doc(template="{x.__class__}"), "$.template", "attribute access"),
    (prompt_doc(template="{x[0]}"), "$.template", "indexing"),
    (prompt_doc(template="{user!r}"), "$.template", "conversion"),
    (prompt_doc(template="{user:>10}"), "$.template", "format spec"),
    (prompt_doc(template="{0}"), "$.template", "positional"),
    (prompt_doc(template="{system}{user"), "$.template", "unbalanced '{' at column 9"),
    (prompt_doc(template="a } b"), "$.template", "unbalanced '}' at column 3"),
    (prompt_doc(turn_template="{role}{who}"), "$.turn_template", "unknown placeholder {who}"),
])
def test_invalid_documents_are_located(doc, path, needle):
    prompt, problems = problems_of(doc)
    errors = [p for p in problems if p.severity == "error"]
    assert prompt is None
    assert any(p.json_path == path and needle in p.message + str(p.fix) for p in errors), errors


def test_unknown_config_key_suggests_the_right_one():
    _, problems = problems_of(prompt_doc(config={"temprature": 1}))
    assert problems[0].fix == "did you mean 'temperature'?"
    assert problems[0].line == 3


@pytest.mark.parametrize(("data", "needle", "line"), [
    (b'{"config": {}, "template": "x",}', "invalid JSON", 1),
    (b'{\n  "config": {},\n  "template": "\xff"\n}', "not valid UTF-8", 3),
    (b'[1, 2]', "must be a JSON object", None),
    (b'{"config": {}, "template": "a", "template": "b"}', "duplicate key", None),
    (b'[' * 100_000, "invalid JSON", None),
    (b' ' * 10_000_000, "the limit is 1,000,000", None),
])
def test_unreadable_files(data, needle, line):
    prompt, problems = problems_of(data)
    assert prompt is None and needle in problems[0].message
    assert line is None or problems[0].line == line


@pytest.mark.parametrize("name", ["Upper", "-rf", "a b", "../x", "con", "x.lock", "a..b", "é"])
def test_bad_file_names_are_errors(name):
    prompt, problems = problems_of(prompt_doc(), name=name)
    assert prompt is None and problems[0].code == "bad-name"


def test_unused_field_is_a_warning_not_an_error():
    prompt, problems = problems_of(prompt_doc(template="{user}", style="terse"))
    assert prompt is not None
    assert [(p.severity, p.json_path) for p in problems] == [("warning", "$.style"), ("warning", "$.system")]


@pytest.mark.parametrize("tests", [
    [{"dataset": "datasets/support.jsonl"}],
    [{"dataset": "cases.csv", "name": "support", "vars": {"system": "x"}, "repeat": 3, "min_pass_rate": 0.6,
      "threshold": 0.5, "assert": [{"type": "similar", "value": ["Berlin"], "threshold": 0.8, "weight": 2}]}],
    [{"name": "t", "repeat": 5, "min_pass_rate": 0.8, "assert": [
        {"type": "json-schema", "value": {"type": "object"}}, {"type": "levenshtein", "value": "Berlin"},
        {"type": "rouge-n", "value": "the capital", "n": 2}, {"type": "llm-rubric", "value": "is polite", "weight": 0},
        {"type": "python", "value": "checks/a.py:ok"}, {"type": "tokens", "min": 1},
        {"type": "latency", "max": 2000}, {"type": "contains", "value": "x", "threshold": 1}]}],
])
def test_dataset_entries_and_scored_assertions_are_valid(tests):
    prompt, problems = problems_of(prompt_doc(tests=tests))
    assert prompt is not None, problems


@pytest.mark.parametrize(("tests", "path", "needle"), [
    ([{"dataset": "d.jsonl", "nmae": "x"}], "$.tests[0].nmae", "did you mean 'name'?"),
    ([{"dataset": ""}], "$.tests[0].dataset", "should be non-empty"),
    ([{"name": "t", "repeat": 0, "assert": [{"type": "is-json"}]}], "$.tests[0].repeat", "integer from 1 to 1000"),
    ([{"name": "t", "assert": [{"type": "similar", "value": "x", "threshold": 2}]}],
     "$.tests[0].assert[0].threshold", "number from 0 to 1"),
    ([{"name": "t", "assert": [{"type": "contains", "value": "x", "weight": -1}]}],
     "$.tests[0].assert[0].weight", "number of at least 0"),
    ([{"name": "t", "assert": [{"type": "levenshtein"}]}], "$.tests[0].assert[0]", "'value' is required"),
    ([{"name": "t", "assert": [{"type": "tokens"}]}], "$.tests[0].assert[0]", "'max' is required"),
    ([{"name": "t", "assert": [{"type": "contains", "value": {"a": 1}}]}], "$.tests[0].assert[0].value", "must be"),
])
def test_bad_dataset_entries_and_assertions_are_located(tests, path, needle):
    prompt, problems = problems_of(prompt_doc(tests=tests))
    assert prompt is None
    assert any(p.json_path == path and needle in p.message + str(p.fix) for p in problems), problems


TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def json_format(schema):
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


@pytest.mark.parametrize("doc", [
    NEW_JSON_PROMPT,
    {**NEW_PROMPT, "tools": [TOOL]},
    {**NEW_JSON_PROMPT, "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
    {**NEW_PROMPT, "response_format": {"type": "choice", "choice": ["yes", "no"]}},
    prompt_doc(response_format={"type": "regex", "regex": "[0-9]+"}),
    prompt_doc(response_format={"type": "text"}, config={"structured_outputs": {"choice": ["a", "b"]}}),
])
def test_valid_contracts(doc):
    prompt, problems = problems_of(doc)
    assert prompt is not None and [p for p in problems if p.severity == "error"] == [], problems


@pytest.mark.parametrize(("doc", "path", "code", "needle"), [
    ({**NEW_PROMPT, "response_format": json_format({"type": "object", "properties": {"a": {"type": "strin"}}})},
     "$.response_format.json_schema.schema.properties.a.type", "contract-schema", "not a valid JSON Schema"),
    ({**NEW_PROMPT, "response_format": json_format({"type": "array", "uniqueItems": True})},
     "$.response_format.json_schema.schema.uniqueItems", "contract-unsupported", "the model may repeat items"),
    ({**NEW_PROMPT, "tools": [TOOL, TOOL]}, "$.tools[1].function.name", "contract-tools", "used twice"),
    ({**NEW_PROMPT, "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_wether"}}},
     "$.tool_choice.function.name", "contract-tools", "name one of: get_weather"),
    (prompt_doc(tools=[TOOL]), "$.tools", "contract-tools", "tools need a chat prompt"),
    ({**NEW_JSON_PROMPT, "config": {"structured_outputs": {"choice": ["a"]}}}, "$.config.structured_outputs",
     "contract-conflict", "drop config.structured_outputs; response_format is enforced by the model server"),
    ({**NEW_PROMPT, "tools": [TOOL], "config": {"guided_decoding": '{"regex": "a"}'}}, "$.config.guided_decoding",
     "contract-conflict", "config.guided_decoding and tools"),
    ({**NEW_PROMPT, "tools": [TOOL], "tool_choice": "auot"}, "$.tool_choice", "schema-enum", "did you mean 'auto'?"),
    ({**NEW_PROMPT, "response_format": {"type": "json_schema"}}, "$.response_format", "schema-required", "json_schema"),
    ({**NEW_PROMPT, "response_format": {"type": "choice", "choice": []}}, "$.response_format.choice",
     "schema-minItems", "should be non-empty"),
])
def test_contract_problems_are_located(doc, path, code, needle):
    prompt, problems = problems_of(doc)
    assert prompt is None
    assert any((p.json_path, p.code) == (path, code) and needle in p.message + str(p.fix) for p in problems), problems


def test_an_embedded_schema_problem_has_its_line_and_a_stray_key_is_a_warning():
    schema = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
    text = json.dumps({**NEW_PROMPT, "response_format": {**json_format(schema), "regex": "x"}}, indent=2)
    _, problems = problems_of(text.encode())
    assert [(p.severity, p.line) for p in problems] == [("error", text[:text.index("uniqueItems")].count("\n") + 1),
                                                        ("warning", text[:text.index('"regex"')].count("\n") + 1)]
