"""A prompt's output contract: the answer's format (`response_format`) and the tools it may call.

The contract is enforced by the model server, not checked after the fact: `Contract.constraint()`
is the set of vLLM `StructuredOutputsParams` fields that `sampling()` puts in the request's
`sampling_parameters` as `structured_outputs`, a JSON *string*, exactly as NVIDIA's Triton `vllm`
backend reads it (and the CPU backend and the echo test model read the same key). Decoding is then
constrained by a grammar, so even a small model answers with text that parses.

- `response_format` is OpenAI's shape: `{"type": "json_schema", "json_schema": {"name", "schema",
  "strict"}}`, `{"type": "json_object"}` or `{"type": "text"}`; promptops adds `{"type": "regex",
  "regex": "..."}` and `{"type": "choice", "choice": [...]}` (vLLM's own constraints).
- `tools` are OpenAI function definitions (`{"type": "function", "function": {"name",
  "description", "parameters"}}`), `tool_choice` is `auto` (the default), `required`, `none` or
  `{"type": "function", "function": {"name": ...}}`. Any model can call them: the answer is
  decoded under a JSON Schema of `{"name": <a tool>, "arguments": <its parameters>}` (one branch per
  tool); with `auto` a further branch is the plain answer (`{"content": "..."}`, or the
  `response_format` schema when there is one). `read()` turns the answer back into OpenAI
  `tool_calls` or content.

Pure: no I/O, no framework; jsonschema is imported when an answer is validated.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from promptops.errors import ContractRefused, PromptOpsError

RESPONSE_TYPES = ("text", "json_object", "json_schema", "regex", "choice")
TOOL_CHOICES = ("auto", "required", "none")
# The plain-text branch of an `auto` tool prompt without a response_format.
CONTENT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"content": {"type": "string"}},
                                  "required": ["content"], "additionalProperties": False}


@dataclass(frozen=True)
class Tool:
    """One function the model may call."""

    name: str
    description: str
    parameters: Mapping[str, Any]

    def openai(self) -> dict[str, Any]:
        """The OpenAI tool definition (what chat templates take as `tools`)."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": dict(self.parameters)}}

    def call_schema(self) -> dict[str, Any]:
        """The JSON Schema of a call of this tool: `{"name": <this name>, "arguments": <its parameters>}`."""
        return {"type": "object", "properties": {"name": {"const": self.name}, "arguments": dict(self.parameters)},
                "required": ["name", "arguments"], "additionalProperties": False}


@dataclass(frozen=True)
class ToolCall:
    """A call the model made: the tool's name and its arguments (already validated when `valid`)."""

    name: str
    arguments: Mapping[str, Any]
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    def openai(self) -> dict[str, Any]:
        """OpenAI's `tool_calls` entry: the arguments as a JSON string."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)}}

    def text(self) -> str:
        """The call as the model wrote it (how a past call goes back into the conversation)."""
        return json.dumps({"name": self.name, "arguments": self.arguments}, ensure_ascii=False)


@dataclass(frozen=True)
class Structured:
    """What an answer under a contract holds.

    `value` is the parsed JSON (None when the answer is not JSON); `valid` says whether it satisfies
    the contract (parses, validates against the schema, names a known tool); `errors` say why not.
    `content` is the answer as the caller sees it: the JSON text, or a plain answer's text; empty
    for a tool call, whose calls are `tool_calls`."""

    value: Any
    valid: bool
    errors: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    content: str = ""

    def describe(self) -> dict[str, Any]:
        """The JSON form the gateway returns beside the text."""
        out: dict[str, Any] = {"parsed": self.value, "valid": self.valid, "errors": list(self.errors)}
        if self.tool_calls:
            out["tool_calls"] = [call.openai() for call in self.tool_calls]
        return out


@dataclass(frozen=True)
class Contract:
    """A prompt's output contract; `Contract()` (no format, no tools) constrains nothing."""

    response_format: Mapping[str, Any] | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: str | Mapping[str, Any] = "auto"
    declares_constraint: bool = False  # the prompt's config sets structured_outputs/guided_decoding itself

    @property
    def declares_format(self) -> bool:
        """The prompt fixes the answer's format: a response_format other than text, or its own constraint."""
        return (self.response_format is not None and self.kind != "text") or self.declares_constraint

    @property
    def kind(self) -> str:
        """The response_format's type ("text" when there is none)."""
        return str((self.response_format or {}).get("type", "text"))

    @property
    def schema(self) -> dict[str, Any] | None:
        """The JSON Schema a (non-tool) answer must validate against: json_schema's own, `{"type": "object"}`
        for json_object, None for text, regex and choice."""
        if self.kind == "json_schema":
            return dict(self.response_format["json_schema"].get("schema") or {})  # type: ignore[index]
        if self.kind == "json_object":
            return {"type": "object"}
        return None

    @property
    def callable_tools(self) -> tuple[Tool, ...]:
        """The tools the model may call under `tool_choice` (none for `none`; one for a named function)."""
        choice = self.tool_choice
        if choice == "none":
            return ()
        if isinstance(choice, Mapping):
            name = (choice.get("function") or {}).get("name")
            return tuple(tool for tool in self.tools if tool.name == name)
        return self.tools

    @property
    def calls_required(self) -> bool:
        """The answer must be a tool call (`required`, or a named function)."""
        return bool(self.callable_tools) and self.tool_choice != "auto"

    @property
    def enforced(self) -> bool:
        """Whether decoding is constrained at all."""
        return self.constraint() is not None

    def answer_schema(self) -> dict[str, Any] | None:
        """The JSON Schema of the whole answer text, tool calls included; None when the answer is not JSON."""
        calls = [tool.call_schema() for tool in self.callable_tools]
        if not calls:
            return self.schema
        if self.calls_required:
            return calls[0] if len(calls) == 1 else {"anyOf": calls}
        return {"anyOf": [*calls, self.schema if self.schema is not None else CONTENT_SCHEMA]}

    def constraint(self) -> dict[str, Any] | None:
        """The vLLM `StructuredOutputsParams` fields that enforce the contract (None: unconstrained)."""
        if self.callable_tools:
            return {"json": self.answer_schema()}
        kind = self.kind
        if kind == "json_schema":
            return {"json": self.schema}
        if kind == "json_object":
            return {"json_object": True}
        if kind == "regex":
            return {"regex": str(self.response_format["regex"])}  # type: ignore[index]
        if kind == "choice":
            return {"choice": list(self.response_format["choice"])}  # type: ignore[index]
        return None

    def sampling(self, config: Mapping[str, Any]) -> Mapping[str, Any]:
        """`config` plus `structured_outputs` (a JSON string, as NVIDIA's backend reads it) when enforced."""
        constraint = self.constraint()
        if constraint is None:
            return config
        return {**config, "structured_outputs": json.dumps(constraint, ensure_ascii=False, separators=(",", ":"))}

    def read(self, text: str) -> Structured | None:
        """The answer checked against the contract; None when there is no contract to check."""
        if self.constraint() is None:
            return None
        kind = self.kind
        if not self.callable_tools and kind in ("regex", "choice"):
            return _read_pattern(self, text)
        try:
            value = json.loads(text)
        except ValueError as exc:
            return Structured(None, False, (f"the answer is not JSON ({exc.msg} at position {exc.pos})",),
                              content=text)
        if self.callable_tools:
            call = _as_call(value, self.callable_tools)
            if call is not None:
                errors = validation_errors(call.arguments, _tool(self, call.name).parameters, "$.arguments")
                return Structured(value, not errors, errors, (call,))
            if self.calls_required:
                return Structured(value, False, ("the answer is not a call of one of the tools",), content=text)
            if self.schema is None:  # a plain answer: {"content": "..."}
                errors = validation_errors(value, CONTENT_SCHEMA)
                content = value.get("content") if isinstance(value, dict) else None
                return Structured(value, not errors, errors, content=content if isinstance(content, str) else text)
        errors = validation_errors(value, self.schema or {})
        return Structured(value, not errors, errors, content=text)

    def instructions(self) -> str:
        """How to call the tools, for a model whose chat template cannot take them (promptops.prompt.render):
        the answer format the constraint enforces, and each tool with its parameters' schema."""
        lines = ["You can call these tools. To call one, answer with only a JSON object "
                 '{"name": <tool name>, "arguments": {<arguments>}}.']
        if not self.calls_required:
            lines.append('To answer without a tool, answer with {"content": <your answer>}.' if self.schema is None
                         else "To answer without a tool, answer with JSON in the required format.")
        for tool in self.callable_tools:
            about = f": {tool.description}" if tool.description else ""
            lines.append(f"- {tool.name}{about} Arguments: {json.dumps(dict(tool.parameters), ensure_ascii=False)}")
        return "\n".join(lines)

    def describe(self) -> dict[str, Any]:
        """The contract as the API shows it: response_format, tools (OpenAI shape) and tool_choice."""
        out: dict[str, Any] = {"response_format": dict(self.response_format) if self.response_format else None}
        if self.tools:
            out["tools"] = [tool.openai() for tool in self.tools]
            out["tool_choice"] = self.tool_choice
        return out

    def with_caller(self, response_format: Mapping[str, Any] | None = None,
                    tools: Sequence[Mapping[str, Any]] | None = None,
                    tool_choice: str | Mapping[str, Any] | None = None) -> Contract:
        """This contract with what a caller asked for (the OpenAI route's fields).

        Tools come only from the prompt file: their descriptions reach the system text, which is reviewed code,
        so a caller may send the prompt's own tools again but not add, drop or change any. A caller may set an
        OpenAI `response_format` (json_schema, json_object, text) where the prompt declares no format, no tools
        and no constraint of its own, send the prompt's own again, and narrow `tool_choice` (`auto` ->
        `required`, `none` or one named tool). Anything else is refused (ContractRefused, a 400); a malformed
        field is a PromptOpsError (400) naming it."""
        for field_name, value in (("response_format", response_format), ("tool_choice", tool_choice)):
            if value is not None:
                _check_shape(field_name, value)
        for index, item in enumerate(tools or ()):
            _check_shape("tool", item, f"tools[{index}]")
        fmt = self.response_format
        if response_format is not None and canonical(response_format) != canonical(self.response_format):
            if self.declares_format or self.tools:
                raise ContractRefused(
                    f"response_format {_short(response_format)} differs from the prompt's reviewed "
                    f"{_short(self.response_format) if self.declares_format else 'contract'}: a caller cannot "
                    "loosen or replace a prompt's output schema",
                    fix="drop response_format from the request (the prompt's own applies), or change the "
                        "prompt file in a reviewed version")
            if response_format.get("type") not in ("json_schema", "json_object", "text"):
                raise ContractRefused(f"response_format type {response_format.get('type')!r} is a prompt file's "
                                      "option, not a caller's", fix="send json_schema, json_object or text")
            fmt = response_format
        if tools is not None:
            asked = [tool_from_openai(item, f"tools[{i}]").openai() for i, item in enumerate(tools)]
            if asked and canonical(asked) != canonical([t.openai() for t in self.tools]):
                raise ContractRefused("tools differ from the prompt's reviewed tools: tools come only from the "
                                      "prompt file (their descriptions are part of its reviewed system text)",
                                      fix="drop tools from the request (the prompt's own apply), or add them to "
                                          "the prompt file in a reviewed version")
        choice = self.tool_choice
        if tool_choice is not None and self.tools:
            narrowing = self.tool_choice == "auto" or canonical(tool_choice) == canonical(self.tool_choice)
            if not narrowing:
                raise ContractRefused(f"tool_choice {tool_choice!r} would loosen the prompt's {self.tool_choice!r}",
                                      fix="drop tool_choice from the request")
            choice = tool_choice
        contract = Contract(fmt, self.tools, choice, self.declares_constraint)
        problems = contract_problems({"response_format": fmt} if fmt else {})
        if problems:
            raise PromptOpsError(f"response_format: {problems[0][1]}", fix=problems[0][2])
        return contract


def _check_shape(kind: str, value: Any, where: str | None = None) -> None:
    """A caller's response_format, tool or tool_choice against the prompt schema's definition of it."""
    errors = validation_errors(value, _definition(kind), where or kind)
    if errors:
        raise PromptOpsError(f"{errors[0]}", fix=f"send {kind} in OpenAI's shape (see schemas/prompt.schema.json)")


@lru_cache(maxsize=4)
def _definition(kind: str) -> dict[str, Any]:
    from promptops.prompt.schema_file import schema

    full = schema()
    part = full["$defs"]["tool"] if kind == "tool" else full["properties"][kind]
    return {**part, "$defs": full["$defs"]}


def _tool(contract: Contract, name: str) -> Tool:
    return next(tool for tool in contract.tools if tool.name == name)


def _as_call(value: Any, tools: Sequence[Tool]) -> ToolCall | None:
    if not (isinstance(value, dict) and set(value) == {"name", "arguments"}):
        return None
    if value["name"] not in {tool.name for tool in tools} or not isinstance(value["arguments"], dict):
        return None
    return ToolCall(value["name"], value["arguments"])


def _read_pattern(contract: Contract, text: str) -> Structured:
    fmt = contract.response_format or {}
    if contract.kind == "choice":
        ok = text in list(fmt.get("choice", []))
        return Structured(text if ok else None, ok, () if ok else (f"{text!r} is none of the choices",), content=text)
    import re

    try:  # Python's re is not xgrammar's dialect: a pattern it cannot read leaves the answer unchecked
        ok = re.fullmatch(str(fmt.get("regex", "")), text) is not None
    except re.error as exc:
        return Structured(None, False, (f"the regex cannot be checked here: {exc}",), content=text)
    return Structured(text if ok else None, ok, () if ok else ("the answer does not match the regex",), content=text)


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(schema_json))


def validation_errors(value: Any, schema: Mapping[str, Any], where: str = "$") -> tuple[str, ...]:
    """Why `value` does not validate against `schema`: one line per error (at most 10), each starting with
    its JSON path under `where` (`$.items[0].name: ...`). Empty when it validates."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    try:
        errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    except Exception as exc:  # an unresolvable $ref (validate refuses them; a caller's may slip through)
        return (f"{where}: cannot be validated: {exc}",)
    return tuple(f"{where}{_path(error.absolute_path)}: {error.message}" for error in errors[:10])


def _path(parts: Sequence[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def canonical(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal for equal values, whatever their key order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _short(fmt: Mapping[str, Any] | None) -> str:
    if not fmt:
        return "none"
    kind = fmt.get("type")
    name = (fmt.get("json_schema") or {}).get("name") if kind == "json_schema" else None
    return f"{kind} {name!r}" if name else str(kind)


def _is_tool(item: Any) -> bool:
    function = item.get("function") if isinstance(item, Mapping) else None
    return isinstance(function, Mapping) and isinstance(function.get("name"), str)


def tool_from_openai(item: Any, where: str = "tools[0]") -> Tool:
    """An OpenAI tool definition as a Tool; PromptOpsError naming `where` when it is not one."""
    if not _is_tool(item):
        raise PromptOpsError(f"{where} is not an OpenAI function tool",
                             fix='write {"type": "function", "function": {"name": ..., "parameters": {...}}}')
    function = item["function"]
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return Tool(function["name"], str(function.get("description", "")), parameters)


def of(document: Mapping[str, Any]) -> Contract:
    """The contract a prompt document declares (`response_format`, `tools`, `tool_choice`). Tool entries that
    are not OpenAI function tools are left out: validation reports them (the review reads unvalidated heads)."""
    fmt = document.get("response_format")
    items = document.get("tools")
    tools = tuple(tool_from_openai(item) for item in (items if isinstance(items, list) else ()) if _is_tool(item))
    config = document.get("config") or {}
    constrained = any(config.get(key) is not None for key in ("structured_outputs", "guided_decoding"))
    return Contract(fmt if isinstance(fmt, Mapping) else None, tools, document.get("tool_choice") or "auto",
                    constrained)


def contract_problems(document: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(JSON path, message, fix) for what the prompt schema cannot say about a contract: the embedded
    schemas are valid JSON Schema, tool names are unique, tool_choice names a tool, and only what the
    structured-output engine enforces is used (promptops.prompt.schema_support)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    from promptops.prompt.schema_support import refs, unsupported

    problems: list[tuple[str, str, str]] = []

    def check_schema(schema: Any, where: str) -> None:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            at = where + "".join(f"/{p}" for p in exc.absolute_path)
            problems.append((at, f"not a valid JSON Schema: {exc.message}",
                             "fix the schema (draft 2020-12); see https://json-schema.org/understanding-json-schema"))
            return
        for pointer, message, fix in unsupported(schema):
            problems.append((where + pointer, message, fix))
        for pointer, ref in refs(schema):
            if not ref.startswith("#"):
                problems.append((where + pointer, f"$ref {ref!r} points outside the schema",
                                 "inline the referenced schema under $defs and refer to it as #/$defs/NAME"))

    fmt = document.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        check_schema((fmt.get("json_schema") or {}).get("schema", {}), "/response_format/json_schema/schema")
    if isinstance(fmt, Mapping) and fmt.get("type") == "regex":
        import re

        try:
            re.compile(str(fmt.get("regex", "")))
        except re.error as exc:
            problems.append(("/response_format/regex", f"not a regular expression: {exc}",
                             "write a plain regular expression (no \\p{...} classes, lookaround or backreferences)"))
    seen: set[str] = set()
    for i, item in enumerate(document.get("tools") or ()):
        function = item.get("function", {}) if isinstance(item, Mapping) else {}
        name = function.get("name")
        if name in seen:
            problems.append((f"/tools/{i}/function/name", f"tool name {name!r} is used twice",
                             "give every tool a unique name"))
        seen.add(name)
        if "parameters" in function:
            check_schema(function["parameters"], f"/tools/{i}/function/parameters")
    choice = document.get("tool_choice")
    if isinstance(choice, Mapping):
        named = (choice.get("function") or {}).get("name")
        if named not in seen:
            problems.append(("/tool_choice/function/name", f"tool_choice names {named!r}, which is not a tool",
                             f"name one of: {', '.join(sorted(n for n in seen if n)) or '(no tools)'}"))
    elif choice is not None and choice != "none" and not seen:
        problems.append(("/tool_choice", f"tool_choice is {choice!r} but the prompt has no tools",
                         "add tools, or drop tool_choice"))
    return problems


__all__ = ["CONTENT_SCHEMA", "Contract", "ContractRefused", "RESPONSE_TYPES", "Structured", "TOOL_CHOICES", "Tool",
           "ToolCall", "contract_problems", "of", "tool_from_openai", "validation_errors"]
