"""Contract changes: an old and a new output contract compared by meaning, each change breaking or compatible."""

from __future__ import annotations

from typing import Any

import pytest

from promptops.prompt.compat import ContractChange, contract_changes, summary

S = "response_format.schema"
P = "tools.get_weather.parameters"
STR: dict[str, Any] = {"type": "string"}


def obj(properties: dict[str, Any], required: tuple[str, ...] = (), **more: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), **more}


def answer(schema: dict[str, Any]) -> dict[str, Any]:
    """A prompt document whose answer follows `schema`."""
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "ticket", "schema": schema}}}


def tools(*names: str, params: dict[str, Any] | None = None, choice: Any = None) -> dict[str, Any]:
    document: dict[str, Any] = {"tools": [{"type": "function", "function": {
        "name": name, "description": "", "parameters": params or obj({"city": STR}, ("city",))}} for name in names]}
    return document | ({"tool_choice": choice} if choice else {})


def field(schema: dict[str, Any]) -> dict[str, Any]:
    return answer(obj({"a": schema}, ("a",)))


CASES = [
    pytest.param(answer(obj({"a": STR, "b": STR}, ("a", "b"))), answer(obj({"a": STR}, ("a",))),
                 [(f"{S}.properties.b", True)], id="required field removed"),
    pytest.param(answer(obj({"a": STR, "b": STR}, ("a",))), answer(obj({"a": STR}, ("a",))),
                 [(f"{S}.properties.b", True)], id="optional field removed"),
    pytest.param(answer(obj({"a": STR})), answer(obj({"a": STR, "c": STR})),
                 [(f"{S}.properties.c", False)], id="optional field added"),
    pytest.param(answer(obj({"a": STR})), answer(obj({"a": STR, "c": STR}, ("c",))),
                 [(f"{S}.properties.c", True)], id="required field added"),
    pytest.param(answer(obj({"a": STR}, ("a",))), answer(obj({"a": STR})), [(f"{S}.required", False)],
                 id="field made optional"),
    pytest.param(answer(obj({"a": STR})), answer(obj({"a": STR}, ("a",))), [(f"{S}.required", True)],
                 id="field made required"),
    pytest.param(field({"enum": ["low", "high"]}), field({"enum": ["low"]}), [(f"{S}.properties.a.enum", True)],
                 id="enum value removed"),
    pytest.param(field({"enum": ["low"]}), field({"enum": ["low", "high"]}), [(f"{S}.properties.a.enum", False)],
                 id="enum value added"),
    pytest.param(field({"type": ["string", "null"]}), field(STR), [(f"{S}.properties.a.type", True)],
                 id="type narrowed"),
    pytest.param(field({"type": "number"}), field({"type": "integer"}), [(f"{S}.properties.a.type", True)],
                 id="number narrowed to integer"),
    pytest.param(field({"type": "integer"}), field({"type": ["number", "null"]}), [(f"{S}.properties.a.type", False)],
                 id="type widened"),
    pytest.param(field(STR), field({"type": "number"}), [(f"{S}.properties.a.type", True)], id="type changed"),
    pytest.param(field({"maxLength": 100}), field({"maxLength": 50}), [(f"{S}.properties.a.maxLength", True)],
                 id="bound tightened"),
    pytest.param(field({"minimum": 1}), field({}), [(f"{S}.properties.a.minimum", False)], id="bound removed"),
    pytest.param(answer(obj({}, additionalProperties=True)), answer(obj({}, additionalProperties=False)),
                 [(f"{S}.additionalProperties", True)], id="additionalProperties closed"),
    pytest.param(field(obj({"b": STR})), field(obj({})), [(f"{S}.properties.a.properties.b", True)],
                 id="nested field removed"),
    pytest.param(field({"items": {"type": ["string", "null"]}}), field({"items": STR}),
                 [(f"{S}.properties.a.items.type", True)], id="items narrowed"),
    pytest.param(field(STR), field({"anyOf": [STR, {"type": "null"}]}), [(f"{S}.properties.a.anyOf[1]", False)],
                 id="anyOf branch added"),
    pytest.param(field({"oneOf": [STR, {"type": "null"}]}), field({"oneOf": [STR]}),
                 [(f"{S}.properties.a.oneOf[1]", True)], id="oneOf branch removed"),
    pytest.param(answer(obj({"a": {"$ref": "#/$defs/A"}}, **{"$defs": {"A": obj({"city": STR})}})),
                 answer(obj({"a": {"$ref": "#/$defs/A"}}, **{"$defs": {"A": obj({"city": {"type": "integer"}})}})),
                 [(f"{S}.properties.a.properties.city.type", True)], id="$ref'd definition changed"),
    pytest.param(answer(obj({"a": obj({"city": STR})})),
                 answer(obj({"a": {"$ref": "#/$defs/A"}}, **{"$defs": {"A": obj({"city": STR})}})),
                 [], id="definition moved into $defs"),
    pytest.param(field({"type": "string", "description": "a"}), field({"type": "string", "description": "b"}),
                 [(f"{S}.properties.a.description", False)], id="documentation"),
    pytest.param(tools("get_weather", "get_time"), tools("get_weather"), [("tools.get_time", True)],
                 id="tool removed"),
    pytest.param(tools("get_weather"), tools("get_weather", "get_time"), [("tools.get_time", False)],
                 id="tool added"),
    pytest.param(tools("get_weather"), tools("get_weather", params=obj({"city": STR, "units": STR}, ("city", "units"))),
                 [(f"{P}.properties.units", True)], id="required parameter added"),
    pytest.param(tools("get_weather"), tools("get_weather", params=obj({"city": STR, "units": STR}, ("city",))),
                 [(f"{P}.properties.units", False)], id="optional parameter added"),
    pytest.param(tools("get_weather"), tools("get_weather", params=obj({"city": {"enum": ["Oslo"]}}, ("city",))),
                 [(f"{P}.properties.city.enum", True), (f"{P}.properties.city.type", False)],
                 id="parameter narrowed to an enum"),
    pytest.param(tools("get_weather", choice="required"), tools("get_weather"), [("tool_choice", True)],
                 id="tool calls no longer forced"),
    pytest.param(tools("get_weather"), tools("get_weather", choice="required"), [("tool_choice", True)],
                 id="tool calls forced: plain answers stop"),
    pytest.param(answer(obj({})), {}, [("response_format", True)], id="json_schema to text"),
    pytest.param({}, {"response_format": {"type": "json_object"}}, [("response_format", True)],
                 id="text to json_object"),
    pytest.param({"response_format": {"type": "choice", "choice": ["yes", "no"]}},
                 {"response_format": {"type": "choice", "choice": ["yes"]}}, [("response_format.choice", True)],
                 id="choice removed"),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_classification(old: dict[str, Any], new: dict[str, Any], expected: list[tuple[str, bool]]) -> None:
    assert [(c.path, c.breaking) for c in contract_changes(old, new)] == expected


def test_messages_and_summary_read_as_sentences() -> None:
    changes = contract_changes(answer(obj({"a": STR, "b": STR}, ("b",))), answer(obj({"a": STR, "c": STR})))
    assert changes == [
        ContractChange(f"{S}.properties.b", "field-removed", True, "field `b` removed (it was required)"),
        ContractChange(f"{S}.properties.c", "field-added", False, "optional field `c` added")]
    assert summary(changes) == "1 breaking, 1 compatible" and summary([]) == "no contract changes"


def test_a_recursive_schema_is_walked_once_and_added_or_removed_prompts_have_no_changes() -> None:
    tree = obj({"children": {"type": "array", "items": {"$ref": "#"}}})
    changes = contract_changes(answer(tree), answer(tree | {"properties": {**tree["properties"], "x": STR}}))
    assert [(c.path, c.kind) for c in changes] == [(f"{S}.properties.x", "field-added")]
    assert contract_changes(None, answer(tree)) == contract_changes(answer(tree), None) == []
