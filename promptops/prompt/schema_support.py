"""What the model server's structured-output engine does not enforce in a JSON Schema.

A prompt's `response_format` schema and tool parameters are enforced while the model decodes, by
vLLM's xgrammar engine (NVIDIA's Triton backend and ours accept only the `xgrammar`/`auto` backends).
A keyword xgrammar does not enforce either makes vLLM refuse the schema or, worse, is dropped
silently, so the answer may break it. `unsupported()` names each such keyword before it ships.

The facts, read from vLLM 0.32 and measured with xgrammar 0.2.8 (`.venv-serve`):
- vLLM's `has_xgrammar_unsupported_json_features` (v1/structured_output/backend_xgrammar.py) flags,
  keyed on the declared `type`: multipleOf on numbers; uniqueItems, contains, minContains and
  maxContains on arrays; a string `format` outside `STRING_SUPPORTED_FORMATS`; pattern or format with
  minLength/maxLength; propertyNames with properties, patternProperties, unevaluatedProperties or a
  pattern+length; patternProperties with properties or with two patterns; allOf with 2+ branches.
  Such a schema is refused with backend `xgrammar`; with `auto` (the default) vLLM hands it to
  llguidance or outlines, and llguidance refuses uniqueItems, contains, propertyNames and unknown
  formats too ("Unimplemented keys").
- What vLLM does not flag goes to xgrammar, which accepts answers that break (measured with
  `Grammar.from_json_schema` and `xgrammar.testing._is_grammar_accept_string`): `not`,
  `if`/`then`/`else`, `dependentRequired`, `dependentSchemas`; uniqueItems/contains on an array known
  only by its `items`; and every string, number, array-size or object-size keyword on a schema with
  no `type` (xgrammar infers one from properties/additionalProperties/items/prefixItems only, and an
  anyOf/oneOf/allOf branch does not inherit its parent's; propertyNames' schema is for keys: strings).
- `oneOf` is decoded as `anyOf` (an answer may match two branches); it is not reported, since
  branches are usually disjoint (a tool call's are: each names its tool with `const`).

tests/prompt/test_schema_support.py checks these facts against the installed vLLM and xgrammar.
Pure: stdlib only, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Finding = tuple[str, str, str]  # (JSON pointer inside the schema, message, fix)

# vLLM's STRING_SUPPORTED_FORMATS (backend_xgrammar.py), from xgrammar's json_schema_converter.cc.
STRING_FORMATS = frozenset({"email", "date", "time", "date-time", "duration", "ipv4", "ipv6", "hostname", "uuid",
                            "uri", "uri-reference", "uri-template", "json-pointer", "relative-json-pointer"})

REFUSED = "vLLM refuses such a schema (backend xgrammar) or hands it to a fallback engine (auto)"
IGNORED = "vLLM serves it unenforced"

# Keywords that only constrain one type: ignored by xgrammar on a node with no type it knows.
TYPED_KEYWORDS = {
    "minLength": "string", "maxLength": "string", "pattern": "string", "format": "string",
    "minimum": "number", "maximum": "number", "exclusiveMinimum": "number", "exclusiveMaximum": "number",
    "multipleOf": "number", "minItems": "array", "maxItems": "array", "uniqueItems": "array", "contains": "array",
    "minContains": "array", "maxContains": "array", "required": "object", "minProperties": "object",
    "maxProperties": "object", "patternProperties": "object", "propertyNames": "object",
}
# What makes xgrammar infer a type, or constrain the value otherwise, where `type` is absent.
_TYPE_GIVING = ("type", "properties", "additionalProperties", "items", "prefixItems", "anyOf", "oneOf", "allOf",
                "$ref", "const", "enum")

_ARRAY = {
    "uniqueItems": ("the model may repeat items", "drop uniqueItems and check it in your application, or list the "
                                                  "allowed values with enum"),
    "contains": ("the list may lack the item contains asks for", "drop contains and check it in your application, "
                                                                 "or fix the first items with prefixItems"),
    "minContains": ("the list may hold too few matching items", "drop minContains and check it in your application"),
    "maxContains": ("the list may hold too many matching items", "drop maxContains and check it in your application"),
}
_ALWAYS_IGNORED = {
    "not": ("the answer may match the excluded schema",
            "list what is allowed instead (enum, const, pattern), or drop not and check it in your application"),
    "if": ("then/else are never applied", "write the cases as anyOf branches, each complete, or drop if/then/else "
                                          "and check it in your application"),
    "dependentRequired": ("a property may come without the ones it requires",
                          "make those properties required, or write anyOf branches with and without them"),
    "dependentSchemas": ("a property may come without what its schema adds",
                         "write anyOf branches with and without the property"),
}
# Where subschemas live: one schema, a list of schemas, or a map of name -> schema.
_ONE = ("additionalProperties", "unevaluatedProperties", "items", "unevaluatedItems", "propertyNames", "contains",
        "not", "if", "then", "else", "additionalItems")
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_NAMED = ("$defs", "definitions", "properties", "patternProperties", "dependentSchemas")


def unsupported(schema: Any) -> list[Finding]:
    """(JSON pointer, message, fix) for every keyword of `schema` that xgrammar does not enforce."""
    findings: list[Finding] = []
    for node, pointer, under in _walk(schema):
        findings += _node(node, pointer, under)
    return findings


def refs(schema: Any) -> list[tuple[str, str]]:
    """(JSON pointer, target) of every `$ref` in `schema`'s subschemas."""
    return [(f"{pointer}/$ref", node["$ref"]) for node, pointer, _ in _walk(schema)
            if isinstance(node.get("$ref"), str)]


def _walk(schema: Any) -> Iterator[tuple[Mapping[str, Any], str, str]]:
    """Every subschema with its JSON pointer and the keyword it sits under ("" at the root), parents first
    (a stack: deep schemas cannot overflow)."""
    stack: list[tuple[Any, str, str]] = [(schema, "", "")]
    while stack:
        node, pointer, under = stack.pop()
        if not isinstance(node, Mapping):
            continue
        yield node, pointer, under
        children: list[tuple[Any, str, str]] = []
        for key in _ONE:
            if isinstance(node.get(key), Mapping):
                children.append((node[key], f"{pointer}/{key}", key))
        for key in _MANY:
            if isinstance(node.get(key), list):
                children += [(item, f"{pointer}/{key}/{i}", key) for i, item in enumerate(node[key])]
        for key in _NAMED:
            if isinstance(node.get(key), Mapping):
                children += [(sub, f"{pointer}/{key}/{_escape(name)}", key) for name, sub in node[key].items()]
        stack += reversed(children)


def _escape(name: Any) -> str:
    return str(name).replace("~", "~0").replace("/", "~1")


def _types(node: Mapping[str, Any]) -> set[str]:
    """The declared types, read as vLLM reads them (`_schema_types`)."""
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    return {t for t in declared if isinstance(t, str)} if isinstance(declared, list) else set()


def _finding(pointer: str, keyword: str, effect: str, fix: str, flagged: bool, subject: str = "") -> Finding:
    """`effect` is what a measured answer may do ("" where vLLM refuses what was not measured to break)."""
    said = f"enforce {subject or keyword} ({effect})" if effect else f"support {subject or keyword}"
    return f"{pointer}/{keyword}", f"xgrammar does not {said}; {REFUSED if flagged else IGNORED}", fix


def _node(node: Mapping[str, Any], at: str, under: str) -> list[Finding]:
    # propertyNames applies to keys, strings by nature (measured: its pattern and maxLength hold).
    untyped = under != "propertyNames" and not any(key in node for key in _TYPE_GIVING)
    found = _untyped(node, at, under) if untyped else _typed(node, at)
    allof = node.get("allOf")
    if isinstance(allof, list) and len(allof) >= 2:
        found.append(_finding(at, "allOf", f"the answer may break {len(allof) - 1} of its {len(allof)} branches",
                              "merge the allOf branches into one schema", True, f"allOf with {len(allof)} branches"))
    for key, (effect, fix) in _ALWAYS_IGNORED.items():
        if key in node:
            found.append(_finding(at, key, effect, fix, False, "if/then/else" if key == "if" else key))
    return found


def _untyped(node: Mapping[str, Any], at: str, under: str) -> list[Finding]:
    # Measured: a branch does not inherit its parent's type ({"type": "object", "anyOf": [{"required": ...}]}).
    branch = " (a branch does not inherit its parent's: repeat the type and properties in it)" if under in (
        "anyOf", "oneOf", "allOf") else ""
    return [(f"{at}/{key}", f"xgrammar ignores {key} on a schema without \"type\" (the answer may be any JSON "
                            f"value); {IGNORED}", f'add "type": "{kind}" beside {key}{branch}')
            for key, kind in TYPED_KEYWORDS.items() if key in node]


def _typed(node: Mapping[str, Any], at: str) -> list[Finding]:
    types = _types(node)
    found: list[Finding] = []
    if types & {"number", "integer"} and "multipleOf" in node:
        # Measured: ignored for decimals; xgrammar 0.2.8 keeps it for integers, but vLLM refuses both.
        effect = f"the number may not be a multiple of {node['multipleOf']}" if "number" in types else ""
        found.append(_finding(at, "multipleOf", effect, "drop multipleOf and check it in your application, or list "
                                                        "the allowed values with enum", True))
    array = "array" in types or (not types and ("items" in node or "prefixItems" in node))
    for key, (effect, fix) in _ARRAY.items():
        if array and key in node:
            found.append(_finding(at, key, effect, fix, "array" in types))
    if "string" in types:
        found += _string(node, at)
    if "object" in types:
        found += _object(node, at)
    return found


def _length(node: Mapping[str, Any]) -> str | None:
    """The first length bound beside a pattern or format (xgrammar then ignores the length), if any."""
    if "pattern" not in node and "format" not in node:
        return None
    return next((key for key in ("minLength", "maxLength") if key in node), None)


def _string(node: Mapping[str, Any], at: str) -> list[Finding]:
    found: list[Finding] = []
    fmt = node.get("format")
    if fmt is not None and fmt not in STRING_FORMATS:
        known = ", ".join(sorted(STRING_FORMATS))
        found.append(_finding(at, "format", f"the string may be any text, not a {fmt}",
                              f"use a pattern, or one of the formats xgrammar knows: {known}", True, f"format {fmt!r}"))
    length = _length(node)
    if length:
        with_ = "pattern" if "pattern" in node else "format"
        found.append(_finding(at, length, "the string's length is not limited",
                              "put the length in the pattern (e.g. ^[a-z]{1,20}$) and drop minLength/maxLength",
                              True, f"minLength/maxLength together with {with_}"))
    return found


def _object(node: Mapping[str, Any], at: str) -> list[Finding]:
    found: list[Finding] = []
    names = node.get("propertyNames")
    if "propertyNames" in node:
        partners = [key for key in ("properties", "patternProperties") if key in node]
        if node.get("unevaluatedProperties", True) is not True:
            partners.append("unevaluatedProperties")
        if isinstance(names, Mapping) and _length(names):
            partners.append("a pattern with a length bound")
        if partners:
            found.append(_finding(at, "propertyNames", "", "drop propertyNames and list the allowed "
                                  "keys in properties, or keep propertyNames with additionalProperties alone", True,
                                  f"propertyNames together with {' or '.join(partners)}"))
    patterns = node.get("patternProperties")
    if isinstance(patterns, Mapping):
        if "properties" in node:
            found.append(_finding(at, "patternProperties", "keys matching a pattern may hold any value",
                                  "use properties alone, or patternProperties alone", True,
                                  "patternProperties together with properties"))
        elif len(patterns) > 1:
            found.append(_finding(at, "patternProperties", "",
                                  "merge the patterns into one (^(a|b)...) with one schema", True,
                                  f"patternProperties with {len(patterns)} patterns"))
    return found


__all__ = ["Finding", "STRING_FORMATS", "TYPED_KEYWORDS", "unsupported"]
