"""Contract changes: how a prompt's output contract changed between two versions, and whether that breaks
the applications that read its answers (promptops.prompt.outputs describes the contract).

The comparison is semantic, like OpenAPI diff tools (oasdiff): both JSON Schemas are walked side by side
(properties, required, type, enum/const, bounds, items, additionalProperties, anyOf/oneOf/allOf, local
`$ref`s into `$defs` resolved), so reordering keys or moving a definition into `$defs` is no change.

The rule. An application reads the answer (its parser, its typed model of the schema) and runs the tool
calls (its functions), and it keeps answers made under the old contract: the prompt's test cases,
caches, conversation history replayed to the model, its own fixtures. A change is **breaking** when

1. something the application reads is withdrawn: a field, a tool or a tool parameter removed, forced
   tool calls no longer forced (tool_choice), calls of a tool stopped; or
2. the contract rejects an answer it accepted: a required field or parameter added, a field made
   required, a type narrowed (`["string", "null"]` -> `"string"`, `number` -> `integer`) or changed,
   an enum value removed, a bound tightened, `additionalProperties` closed, a pattern or another
   constraint added or changed, an anyOf branch removed, tool calls newly forced (plain answers stop).

It is **compatible** when the contract only loosened or gained something optional: an optional field or
parameter added, a field made optional, an enum value added, a type widened, a bound loosened,
`additionalProperties` opened, a tool added, a branch added; and titles, descriptions, defaults and
examples ("documentation"). Every old answer still validates and nothing is withdrawn, but the new
answers reach the application's code: it has to be a tolerant reader (handle a missing optional field,
an enum value or a tool it does not know); the messages say what it may now receive.

The answer's format (`response_format.type`, text when absent) is what the application parses by, so
any change of format is breaking, in each direction: text -> JSON (an application that shows the answer
now shows raw JSON, and free-text answers no longer validate), JSON -> text (the parse fails),
json_object -> json_schema (rule 2: any object was accepted), json_schema -> json_object (rule 1: every
field guarantee is withdrawn), regex/choice -> anything. Within a format: json_schema compares the
schemas, choice compares its values as an enum, a changed regex is breaking (two regexes cannot be
compared in general). `json_schema.name` and `strict` are reported as compatible: promptops enforces the
schema during decoding whatever `strict` says.

Pure: no I/O. `contract_changes` returns the changes sorted by path, then kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

from promptops.prompt.outputs import Contract, canonical, of

DOCUMENTATION = ("title", "description", "default", "examples")
_IGNORED = frozenset({"$schema", "$id", "$anchor", "$comment", "$defs", "definitions"})
# Lower bounds tighten upwards, upper bounds downwards.
_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains")
_HANDLED = frozenset({"type", "enum", "const", "properties", "required", "additionalProperties", "items",
                      "prefixItems", "anyOf", "oneOf", "allOf", "$ref", *_LOWER, *_UPPER, *DOCUMENTATION, *_IGNORED})


@dataclass(frozen=True)
class ContractChange:
    """One difference in the output contract.

    `path` names where (`response_format.schema.properties.priority`, `tools.get_weather.parameters.required`,
    `tool_choice`), `kind` what (`field-added`, `type-narrowed`, `tool-removed`, `documentation`, ...),
    `message` says it in a sentence."""

    path: str
    kind: str
    breaking: bool
    message: str

    @property
    def verdict(self) -> str:
        """`BREAKING` or `compatible`, as reports print it."""
        return "BREAKING" if self.breaking else "compatible"


def summary(changes: Sequence[ContractChange]) -> str:
    """`2 breaking, 1 compatible` (or `no contract changes`)."""
    if not changes:
        return "no contract changes"
    broken = sum(c.breaking for c in changes)
    return f"{broken} breaking, {len(changes) - broken} compatible"


def contract_changes(old_document: Mapping[str, Any] | None,
                     new_document: Mapping[str, Any] | None) -> list[ContractChange]:
    """What changed in the output contract from `old_document` to `new_document` (prompt documents).

    Either None (a prompt added or removed): nothing to compare, no changes."""
    if old_document is None or new_document is None:
        return []
    old, new = of(old_document), of(new_document)
    out: list[ContractChange] = []
    _response_format(old, new, out)
    _tools(old, new, out)
    _tool_choice(old, new, out)
    return sorted(out, key=lambda c: (c.path, c.kind, c.message))


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _listed(values: Iterable[Any]) -> str:
    return ", ".join(_shown(v) for v in values)


def _response_format(old: Contract, new: Contract, out: list[ContractChange]) -> None:
    if old.kind != new.kind:
        out.append(ContractChange("response_format", "format-changed", True,
                                  f"the answer's format changed from {old.kind} to {new.kind}: "
                                  "the application parses answers by their format"))
        return
    old_fmt, new_fmt = old.response_format or {}, new.response_format or {}
    if old.kind == "regex" and old_fmt.get("regex") != new_fmt.get("regex"):
        out.append(ContractChange("response_format.regex", "regex-changed", True,
                                  f"the answer's regex changed from {_shown(old_fmt.get('regex'))} to "
                                  f"{_shown(new_fmt.get('regex'))}"))
    elif old.kind == "choice":
        _values_changed(list(old_fmt.get("choice") or []), list(new_fmt.get("choice") or []),
                        "response_format.choice", "the answer", out)
    elif old.kind == "json_schema":
        old_js, new_js = old_fmt.get("json_schema") or {}, new_fmt.get("json_schema") or {}
        for key, kind in (("name", "name-changed"), ("strict", "strict-changed"), ("description", "documentation")):
            if old_js.get(key) != new_js.get(key):
                out.append(ContractChange(f"response_format.{key}", kind, False,
                                          f"the answer's schema {key} changed from {_shown(old_js.get(key))} "
                                          f"to {_shown(new_js.get(key))}"))
        old_schema, new_schema = old_js.get("schema") or {}, new_js.get("schema") or {}
        _Walk(old_schema, new_schema, out, "the answer", "field").node(old_schema, new_schema,
                                                                      "response_format.schema", "")


def _tools(old: Contract, new: Contract, out: list[ContractChange]) -> None:
    before, after = {t.name: t for t in old.tools}, {t.name: t for t in new.tools}
    for name in sorted(before.keys() | after.keys()):
        path = f"tools.{name}"
        if name not in after:
            out.append(ContractChange(path, "tool-removed", True,
                                      f"tool `{name}` removed: the model no longer calls it"))
        elif name not in before:
            out.append(ContractChange(path, "tool-added", False,
                                      f"tool `{name}` added: the model may call it, so the application needs "
                                      "to handle it"))
        else:
            if before[name].description != after[name].description:
                out.append(ContractChange(f"{path}.description", "documentation", False,
                                          f"tool `{name}` description changed"))
            params_old, params_new = dict(before[name].parameters), dict(after[name].parameters)
            _Walk(params_old, params_new, out, f"the arguments of `{name}`", "parameter", f" of `{name}`").node(
                params_old, params_new, f"{path}.parameters", "")


def _tool_choice(old: Contract, new: Contract, out: list[ContractChange]) -> None:
    if canonical(old.tool_choice) == canonical(new.tool_choice):
        return
    names = {t.name for t in new.tools}
    still = {t.name for t in new.callable_tools}
    stopped = [t.name for t in old.callable_tools if t.name in names and t.name not in still]
    reasons = []
    if stopped:
        reasons.append("calls of " + ", ".join(f"`{n}`" for n in stopped) + " stop")
    if old.calls_required and not new.calls_required and new.callable_tools:
        reasons.append("the model may now answer without calling a tool")
    if not old.calls_required and new.calls_required:
        reasons.append("the model can no longer answer without calling a tool (plain answers stop)")
    message = f"tool_choice changed from {_choice(old.tool_choice)} to {_choice(new.tool_choice)}"
    out.append(ContractChange("tool_choice", "tool-choice-changed", bool(reasons),
                              message + (": " + "; ".join(reasons) if reasons else "")))


def _choice(choice: Any) -> str:
    """`"auto"`, or `function get_weather` for a named function."""
    if isinstance(choice, Mapping):
        return f"function `{(choice.get('function') or {}).get('name')}`"
    return _shown(choice)


def _values_changed(old: list[Any] | None, new: list[Any] | None, path: str, subject: str,
                    out: list[ContractChange]) -> None:
    """An enum-like list of allowed values (enum, const, choice); None: any value."""
    if old is None and new is None:
        return
    if old is None:
        out.append(ContractChange(path, "values-limited", True, f"{subject} is now limited to {_listed(new or [])}"))
        return
    if new is None:
        out.append(ContractChange(path, "values-unlimited", False, f"{subject} is no longer limited to a list "
                                                                    "of values"))
        return
    old_keys, new_keys = {canonical(v) for v in old}, {canonical(v) for v in new}
    removed = [v for v in old if canonical(v) not in new_keys]
    added = [v for v in new if canonical(v) not in old_keys]
    if removed:
        out.append(ContractChange(path, "enum-value-removed", True, f"{subject} no longer allows {_listed(removed)}"))
    if added:
        out.append(ContractChange(path, "enum-value-added", False, f"{subject} now also allows {_listed(added)}"))


def _types(schema: Mapping[str, Any]) -> frozenset[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    return frozenset([kind] if isinstance(kind, str) else kind)


def _covers(wide: frozenset[str] | None, narrow: frozenset[str] | None) -> bool:
    """Every value of the `narrow` types is one of the `wide` types (None: any type; integer is a number)."""
    if wide is None:
        return True
    if narrow is None:
        return False
    return all(t in wide or (t == "integer" and "number" in wide) for t in narrow)


def _type_shown(types: frozenset[str] | None) -> str:
    if types is None:
        return "any"
    return _shown(next(iter(types))) if len(types) == 1 else _shown(sorted(types))


def _schema(value: Any) -> dict[str, Any]:
    """A subschema as a dict: `true` (or absent) is {}, `false` is {"not": {}}."""
    if value is False:
        return {"not": {}}
    return dict(value) if isinstance(value, Mapping) else {}


def _pointer(root: Mapping[str, Any], ref: str) -> Any:
    """The target of a local `$ref` (`#`, `#/$defs/Name`, any JSON pointer); None when it is not local or not found."""
    if not ref.startswith("#"):
        return None
    from urllib.parse import unquote

    target: Any = root
    for part in (p for p in unquote(ref[1:]).split("/")[1:]):
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and key in target:
            target = target[key]
        elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
            target = target[int(key)]
        else:
            return None
    return target


class _Walk:
    """Walks two JSON Schemas side by side; `subject` names the root in messages, `noun` its properties."""

    def __init__(self, old_root: Mapping[str, Any], new_root: Mapping[str, Any], out: list[ContractChange],
                 subject: str, noun: str, owner: str = "") -> None:
        self.roots = (old_root, new_root)
        self.out = out
        self.subject = subject
        self.noun = noun
        self.owner = owner  # " of `tool`" after a parameter's name
        # The ref pairs being walked (a recursive schema stops where it meets one again); the roots count as `#`.
        self.stack: set[tuple[tuple[str, ...], tuple[str, ...]]] = {(("#",), ("#",))}

    def add(self, path: str, kind: str, breaking: bool, message: str) -> None:
        self.out.append(ContractChange(path, kind, breaking, message))

    def name(self, where: str) -> str:
        return f"`{where}`{self.owner}" if where else self.subject

    def resolve(self, schema: Any, root: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...], str | None]:
        """(the schema with local `$ref`s replaced by their targets, the refs followed, an unresolvable ref)."""
        node, followed = _schema(schema), []
        while "$ref" in node:
            ref = str(node["$ref"])
            target = _pointer(root, ref)
            if target is None:
                return node, tuple(followed), ref
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**_schema(target), **siblings}
            if ref in followed:
                break
            followed.append(ref)
        return node, tuple(followed), None

    def node(self, old_raw: Any, new_raw: Any, path: str, where: str) -> None:
        old, old_refs, old_missing = self.resolve(old_raw, self.roots[0])
        new, new_refs, new_missing = self.resolve(new_raw, self.roots[1])
        if old_missing or new_missing:
            if old_missing != new_missing:
                self.add(f"{path}.$ref", "ref-changed", True,
                         f"{self.name(where)} refers to {_shown(new_missing or 'an inline schema')} instead of "
                         f"{_shown(old_missing or 'an inline schema')}, which promptops cannot compare")
            return
        key = (old_refs, new_refs)
        if (old_refs or new_refs) and key in self.stack:
            return  # a recursive schema: this pair is already being compared further up
        self.stack.add(key)
        try:
            self.compare(old, new, path, where)
        finally:
            self.stack.discard(key)

    def compare(self, old: dict[str, Any], new: dict[str, Any], path: str, where: str) -> None:
        name = self.name(where)
        old, new = self.align(old, new, path, name)
        for key in DOCUMENTATION:
            if canonical(old.get(key)) != canonical(new.get(key)):
                self.add(f"{path}.{key}", "documentation", False, f"{name} {key} changed")
        self.type(old, new, path, name)
        values_key = "const" if "const" in old or "const" in new else "enum"
        _values_changed(self.values(old), self.values(new), f"{path}.{values_key}", name, self.out)
        self.bounds(old, new, path, name)
        self.properties(old, new, path, where)
        self.additional(old, new, path, where)
        if "items" in old or "items" in new:
            self.node(old.get("items", True), new.get("items", True), f"{path}.items", f"{where}[]")
        for i, (a, b) in enumerate(zip_longest(old.get("prefixItems") or [], new.get("prefixItems") or [])):
            self.node(a if a is not None else True, b if b is not None else True, f"{path}.prefixItems[{i}]",
                      f"{where}[{i}]")
        for key in ("anyOf", "oneOf"):
            self.branches(old.get(key), new.get(key), path, where, key, narrowing_added=False)
        self.branches(old.get("allOf"), new.get("allOf"), path, where, "allOf", narrowing_added=True)
        self.other(old, new, path, name)

    @staticmethod
    def values(schema: Mapping[str, Any]) -> list[Any] | None:
        if "const" in schema:
            return [schema["const"]]
        return list(schema["enum"]) if isinstance(schema.get("enum"), list) else None

    def align(self, old: dict[str, Any], new: dict[str, Any], path: str,
              name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Compare anyOf with oneOf, and a plain schema with a combinator as its single branch
        (`string` -> `anyOf: [string, null]` is a branch added)."""
        old_key = "anyOf" if "anyOf" in old else "oneOf" if "oneOf" in old else None
        new_key = "anyOf" if "anyOf" in new else "oneOf" if "oneOf" in new else None
        if old_key == new_key:
            return old, new
        if old_key and new_key:
            self.add(f"{path}.{new_key}", "combinator-changed", new_key == "oneOf",
                     f"{name} uses {new_key} instead of {old_key}")
            return old, {**{k: v for k, v in new.items() if k != new_key}, old_key: new[new_key]}
        key = old_key or new_key or "anyOf"
        side = old if old_key else new
        if set(side) - {key, *DOCUMENTATION, *_IGNORED}:  # other keywords beside the branches: not one branch
            count = len(side[key])
            if new_key:
                self.add(f"{path}.{key}", "constraint-added", True, f"{name} now has to match one of {count} schemas")
            else:
                self.add(f"{path}.{key}", "constraint-removed", False, f"{name} {key} removed")
            return ({k: v for k, v in old.items() if k != key}, {k: v for k, v in new.items() if k != key})

        def wrap(schema: dict[str, Any]) -> dict[str, Any]:
            kept = {k: v for k, v in schema.items() if k in DOCUMENTATION or k in _IGNORED}
            core = {k: v for k, v in schema.items() if k not in kept}
            return {**kept, key: [core]}

        return (wrap(old), new) if old_key is None else (old, wrap(new))

    def type(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str, name: str) -> None:
        before, after = _types(old), _types(new)
        if before == after:
            return
        if _covers(after, before):
            kind, breaking = "type-widened", False
        elif _covers(before, after):
            kind, breaking = "type-narrowed", True
        else:
            kind, breaking = "type-changed", True
        self.add(f"{path}.type", kind, breaking,
                 f"{name} type {kind.removeprefix('type-')} from {_type_shown(before)} to {_type_shown(after)}")

    def bounds(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str, name: str) -> None:
        for key in (*_LOWER, *_UPPER):
            before, after = old.get(key), new.get(key)
            if before == after:
                continue
            if before is None or after is None:
                tightened = before is None
            else:
                tightened = after > before if key in _LOWER else after < before
            kind = "bound-tightened" if tightened else "bound-loosened"
            shown = ("none" if v is None else _shown(v) for v in (before, after))
            self.add(f"{path}.{key}", kind, tightened,
                     f"{name} {key} {kind.removeprefix('bound-')}: {' -> '.join(shown)}")

    def properties(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str, where: str) -> None:
        before, after = old.get("properties") or {}, new.get("properties") or {}
        old_req, new_req = set(old.get("required") or ()), set(new.get("required") or ())
        noun = self.noun if not where else "field"
        for prop in sorted(before.keys() | after.keys()):
            inner = f"{where}.{prop}" if where else prop
            at = f"{path}.properties.{prop}"
            if prop not in after:
                self.add(at, "field-removed", True,
                         f"{noun} {self.name(inner)} removed{' (it was required)' if prop in old_req else ''}")
            elif prop not in before:
                required = prop in new_req
                self.add(at, "field-added", required, f"{'required' if required else 'optional'} {noun} "
                                                      f"{self.name(inner)} added")
            else:
                self.node(before[prop], after[prop], at, inner)
        for prop in sorted(old_req ^ new_req):
            if (prop in before) != (prop in after):
                continue  # reported as added or removed
            inner = self.name(f"{where}.{prop}" if where else prop)
            if prop in new_req:
                self.add(f"{path}.required", "field-now-required", True, f"{noun} {inner} is now required")
            else:
                self.add(f"{path}.required", "field-now-optional", False,
                         f"{noun} {inner} is now optional: answers may omit it")

    def additional(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str, where: str) -> None:
        before, after = old.get("additionalProperties", True), new.get("additionalProperties", True)
        at, name = f"{path}.additionalProperties", self.name(where)
        if before is False and after is not False:
            self.add(at, "additional-properties-opened", False, f"{name} may now have fields beyond its properties")
        elif before is not False and after is False:
            self.add(at, "additional-properties-closed", True,
                     f"{name} may no longer have fields beyond its properties")
        elif before is not True or after is not True:
            self.node(before, after, at, f"{where}.*" if where else "*")

    def branches(self, old: Any, new: Any, path: str, where: str, key: str, *, narrowing_added: bool) -> None:
        """anyOf/oneOf (a branch removed narrows) and allOf (a branch added narrows), branches paired by sameness,
        `$ref`, title, type, then position."""
        if old is None and new is None:
            return
        olds, news = list(old or []), list(new or [])
        pairs, removed, added = _pair(olds, news)
        name = self.name(where)
        for i, j in pairs:
            self.node(olds[i], news[j], f"{path}.{key}[{j}]", where)
        for i in removed:
            self.add(f"{path}.{key}[{i}]", "branch-removed", not narrowing_added,
                     f"{name} {key} branch {i} removed: {_branch(olds[i])}")
        for j in added:
            self.add(f"{path}.{key}[{j}]", "branch-added", narrowing_added,
                     f"{name} {key} branch {j} added: {_branch(news[j])}")

    def other(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str, name: str) -> None:
        """Keywords the walk does not understand: adding or changing one is breaking, removing one loosens."""
        for key in sorted((old.keys() | new.keys()) - _HANDLED):
            if canonical(old.get(key)) == canonical(new.get(key)):
                continue
            if key not in new:
                self.add(f"{path}.{key}", "constraint-removed", False, f"{name} {key} removed")
            else:
                verb = "added" if key not in old else "changed"
                self.add(f"{path}.{key}", f"constraint-{verb}", True,
                         f"{name} {key} {verb}: {_shown(new[key])[:80]}")


def _branch(schema: Any) -> str:
    if isinstance(schema, Mapping) and "$ref" in schema:
        return str(schema["$ref"])
    return _shown(schema)[:80]


def _pair(olds: Sequence[Any], news: Sequence[Any]) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """(old index, new index) pairs, unpaired old indices, unpaired new indices."""
    left, right = list(range(len(olds))), list(range(len(news)))
    pairs: list[tuple[int, int]] = []
    keys: list[Callable[[Any], Any]] = [
        canonical,
        lambda s: s.get("$ref") if isinstance(s, Mapping) else None,
        lambda s: s.get("title") if isinstance(s, Mapping) else None,
        lambda s: canonical(s.get("type")) if isinstance(s, Mapping) and "type" in s else None,
    ]
    for key in keys:
        for i in list(left):
            k = key(olds[i])
            if k is None:
                continue
            j = next((j for j in right if key(news[j]) == k), None)
            if j is not None:
                pairs.append((i, j))
                left.remove(i)
                right.remove(j)
    while left and right:
        pairs.append((left.pop(0), right.pop(0)))
    return sorted(pairs, key=lambda p: p[1]), left, right


__all__ = ["ContractChange", "contract_changes", "summary"]
