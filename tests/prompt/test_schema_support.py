"""What xgrammar does not enforce (promptops/prompt/schema_support.py), and the facts checked against vLLM."""

from __future__ import annotations

import json
import subprocess

import pytest

from promptops.prompt.schema_support import unsupported
from promptops.triton import launcher as triton
from tests.conftest import require_serving

P = {"a": {"type": "integer"}, "b": {"type": "integer"}}
# (schema, where its unsupported keyword is, an answer xgrammar accepts though it breaks the schema): None
# where vLLM refuses the schema (has_xgrammar_unsupported_json_features), an answer where vLLM serves it.
CASES = [
    ({"type": "number", "multipleOf": 0.5}, "/multipleOf", None),
    ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "/uniqueItems", None),
    ({"type": "array", "contains": {"const": 5}, "minContains": 2}, "/minContains", None),
    ({"type": "string", "format": "color"}, "/format", None),
    ({"type": "string", "pattern": "^[a-z]+$", "maxLength": 3}, "/maxLength", None),
    ({"type": "object", "properties": P, "propertyNames": {"pattern": "^[a-z]$"}}, "/propertyNames", None),
    ({"type": "object", "patternProperties": {"^a": {"type": "integer"}, "^b": {}}}, "/patternProperties", None),
    ({"allOf": [{"type": "string"}, {"enum": ["yes", "no"]}]}, "/allOf", None),
    ({"type": "string", "not": {"const": "no"}}, "/not", "no"),
    ({"type": "object", "properties": P, "if": {"required": ["a"]}, "then": {"required": ["b"]}}, "/if", {"a": 1}),
    ({"type": "object", "properties": P, "dependentRequired": {"a": ["b"]}}, "/dependentRequired", {"a": 1}),
    ({"type": "object", "properties": P, "dependentSchemas": {"a": {"required": ["b"]}}}, "/dependentSchemas", {"a": 1}),
    ({"items": {"type": "integer"}, "uniqueItems": True}, "/uniqueItems", [1, 1]),
    ({"type": "object", "properties": {"tag": {"pattern": "^[a-z]+$"}}}, "/properties/tag/pattern", {"tag": "ABC"}),
    ({"type": "object", "properties": P, "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}, "/anyOf/0/required", {}),
]
SUPPORTED = {
    "type": "object", "additionalProperties": False, "required": ["answer", "confidence"],
    "properties": {
        "answer": {"type": "string", "maxLength": 300}, "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 2},
        "day": {"type": "string", "format": "date"}, "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "kind": {"oneOf": [{"type": "integer"}, {"type": "null"}]}, "ref": {"$ref": "#/$defs/r"},
        "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}, "propertyNames": {"pattern": "^[a-z]+$"}},
        "one": {"allOf": [{"type": "integer"}]},
    },
    "$defs": {"r": {"type": "object", "properties": {"k": {"const": 1}}, "required": ["k"]}},
}


@pytest.mark.parametrize(("schema", "pointer", "answer"), CASES)
def test_each_unsupported_keyword_is_located_with_what_vllm_does(schema, pointer, answer):
    found = {at: (message, fix) for at, message, fix in unsupported(schema)}
    message, fix = found[pointer]
    assert message.startswith("xgrammar ") and fix
    assert message.endswith("vLLM serves it unenforced" if answer is not None else "fallback engine (auto)")


def test_a_schema_of_supported_keywords_has_no_findings():
    assert unsupported(SUPPORTED) == []


def test_pointers_reach_every_subschema_escaped():
    leaf = {"type": "array", "uniqueItems": True}
    schema = {"type": "object", "$defs": {"d": leaf}, "additionalProperties": leaf, "anyOf": [leaf],
              "properties": {"a/b~": leaf, "l": {"type": "array", "prefixItems": [leaf], "items": leaf}}}
    assert sorted(at for at, _, _ in unsupported(schema)) == [
        "/$defs/d/uniqueItems", "/additionalProperties/uniqueItems", "/anyOf/0/uniqueItems",
        "/properties/a~1b~0/uniqueItems", "/properties/l/items/uniqueItems", "/properties/l/prefixItems/0/uniqueItems"]


FACTS = """
import json, sys
import xgrammar
from xgrammar.testing import _is_grammar_accept_string
from vllm.v1.structured_output.backend_xgrammar import has_xgrammar_unsupported_json_features
for schema, answer in json.load(sys.stdin):
    # Compiled only where vLLM passes the schema on (it refuses the others before compiling them).
    accepted = answer is not None and _is_grammar_accept_string(
        xgrammar.Grammar.from_json_schema(schema), json.dumps(answer))
    print("FACT", json.dumps([has_xgrammar_unsupported_json_features(schema), accepted]))
"""


def test_the_facts_hold_for_the_installed_vllm_and_xgrammar():
    # vLLM flags each schema reported as refused; it misses the others, whose breaking answer xgrammar accepts.
    # The supported schema: not flagged, and its breaking answer (confidence 2 > maximum 1) is refused.
    require_serving()
    python = triton.locate(triton.TritonConfig().python_env).python
    cases = [(schema, answer) for schema, _, answer in CASES] + [(SUPPORTED, {"answer": "x", "confidence": 2})]
    out = subprocess.run([str(python), "-c", FACTS], input=json.dumps(cases), capture_output=True, text=True,
                         check=True, timeout=300).stdout
    facts = [json.loads(line[5:]) for line in out.splitlines() if line.startswith("FACT ")]
    assert facts == [[answer is None, answer is not None] for _, _, answer in CASES] + [[False, False]]
