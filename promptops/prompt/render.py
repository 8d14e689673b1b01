"""Safe template rendering and static placeholder checks.

Templates are never passed to `str.format`: that would evaluate `{x.__class__}`,
`{x[0]}` and format specs. Instead a small scanner accepts exactly `{name}`,
`{{` and `}}`, and everything else is a located error.

A chat prompt (`messages`) has its contents filled the same way, the conversation so far
inserted (at its `{"history": true}` entry, else before the last user message), and the
result turned into text by the served model's own chat template (`promptops.chat_template`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, Union

from promptops.errors import Problem, TemplateError
from promptops.prompt.model import RUNTIME_VARIABLES, Prompt

if TYPE_CHECKING:
    from promptops.prompt.chat_template import ChatTemplate
    from promptops.prompt.outputs import Contract

# A chat template, or a function from a Triton model name to its chat template.
ChatTemplateSource = Union["ChatTemplate", Callable[[str], "ChatTemplate"]]

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|\{|\}")


@dataclass(frozen=True)
class Placeholder:
    """A `{name}` in a template, with its 1-based column."""

    name: str
    column: int


@dataclass(frozen=True)
class Turn:
    """One past chat turn."""

    role: Literal["user", "assistant", "system"] | str
    content: str


class TemplateSyntaxError(TemplateError):
    """A template that cannot be parsed; `column` is 1-based."""

    def __init__(self, message: str, column: int, fix: str) -> None:
        super().__init__(f"{message} at column {column}", fix=fix)
        self.column = column


def _explain(inner: str) -> tuple[str, str]:
    if inner == "":
        return "empty placeholder {}", "name the field, e.g. {user}, or write {{}} for literal braces"
    if inner.strip().isdigit():
        return f"positional placeholder {{{inner}}} is not allowed", "use a named field such as {user}"
    for mark, what in ((".", "attribute access"), ("[", "indexing"), ("!", "conversion"), (":", "format spec")):
        if mark in inner:
            return (f"placeholder {{{inner}}} uses {what}, which is not allowed",
                    "use a plain {name}; write {{ and }} for literal braces")
    return (f"placeholder {{{inner}}} is not a valid name",
            "names use letters, digits and _, and do not start with a digit")


@lru_cache(maxsize=4096)
def parse(template: str) -> tuple[tuple[str, ...], tuple[Placeholder, ...]]:
    """Split a template into literal chunks and placeholders (len(chunks) == len(placeholders) + 1).

    Raises TemplateSyntaxError with the column of the first problem.
    """
    chunks: list[str] = []
    placeholders: list[Placeholder] = []
    literal: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        literal.append(template[pos:match.start()])
        pos = match.end()
        token = match.group(0)
        column = match.start() + 1
        if token == "{{":
            literal.append("{")
        elif token == "}}":
            literal.append("}")
        elif token == "{":
            raise TemplateSyntaxError("unbalanced '{'", column, "close it with '}' or write '{{' for a literal brace")
        elif token == "}":
            raise TemplateSyntaxError("unbalanced '}'", column, "write '}}' for a literal brace")
        else:
            inner = match.group(1)
            if not IDENTIFIER.fullmatch(inner):
                message, fix = _explain(inner)
                raise TemplateSyntaxError(message, column, fix)
            chunks.append("".join(literal))
            literal = []
            placeholders.append(Placeholder(inner, column))
    literal.append(template[pos:])
    chunks.append("".join(literal))
    return tuple(chunks), tuple(placeholders)


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Fill a template; values are inserted literally, never re-scanned."""
    chunks, placeholders = parse(template)
    parts = [chunks[0]]
    for placeholder, chunk in zip(placeholders, chunks[1:], strict=True):
        try:
            parts.append(values[placeholder.name])
        except KeyError:
            raise TemplateError(f"no value for placeholder {{{placeholder.name}}}",
                                fix=f"pass --var {placeholder.name}=... or add a '{placeholder.name}' field") from None
        parts.append(chunk)
    return "".join(parts)


def render_history(prompt: Prompt, history: Iterable[Turn]) -> str:
    """Render past turns with the prompt's turn_template."""
    return "".join(substitute(prompt.turn_template, {"role": t.role, "content": t.content}) for t in history)


def _values(prompt: Prompt, variables: Mapping[str, str] | None, history: str | None = None) -> dict[str, str]:
    values: dict[str, str] = {name: "" for name in RUNTIME_VARIABLES}
    values.update(prompt.fields)
    if history is not None:
        values["history"] = history
    for key, value in (variables or {}).items():
        if not isinstance(value, str):
            raise TemplateError(f"variable {key!r} must be a string, got {type(value).__name__}")
        values[key] = value
    return values


def chat_messages(prompt: Prompt, variables: Mapping[str, str] | None = None,
                  history: Sequence[Turn] = (), after: Sequence[Turn] = ()) -> list[dict[str, str]]:
    """A chat prompt's messages with placeholders filled and `history` inserted: what the chat template gets.

    History goes where the prompt has `{"history": true}`; without one, before the last user message.
    `after` are the turns that followed the caller's message (a tool call and its results) and go last.
    """
    values = _values(prompt, variables)
    entries = prompt.messages
    at = next((i for i, m in enumerate(entries) if m.get("history")), None)
    if at is None:
        at = max((i for i, m in enumerate(entries) if m.get("role") == "user"), default=len(entries))
    past = [{"role": t.role, "content": t.content} for t in history]
    out: list[dict[str, str]] = []
    for i, entry in enumerate(entries):
        if i == at:
            out += past
        if not entry.get("history"):
            out.append({"role": str(entry["role"]), "content": substitute(str(entry["content"]), values)})
    if at >= len(entries):
        out += past
    return out + [{"role": t.role, "content": t.content} for t in after]


def tool_results_as_user(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """`tool` turns as user turns that say so, for a template that knows no tool role."""
    return [{"role": "user", "content": f"Tool result: {m['content']}"} if m["role"] == "tool" else m
            for m in messages]


def with_tools(messages: list[dict[str, str]], contract: Contract) -> list[dict[str, str]]:
    """Messages for a template that cannot take `tools`: the tools' instructions join the system message
    (one is added first when there is none) and tool results become user turns that say so."""
    note = contract.instructions()
    out = tool_results_as_user(messages)
    if out and out[0]["role"] == "system":
        return [{"role": "system", "content": f"{out[0]['content']}\n\n{note}".lstrip()}, *out[1:]]
    return [{"role": "system", "content": note}, *out]


def _chat_template(prompt: Prompt, source: ChatTemplateSource | None, default_model: str | None) -> ChatTemplate:
    if source is not None and not callable(source):
        return source
    model = prompt.model or default_model
    if model is None:  # a pure function: the caller knows which model serves this prompt
        raise TemplateError(f"chat prompt '{prompt.name}' names no model, and no default model was given",
                            fix='add "model" to the prompt file, or render it where the served model is known')
    if source is None:
        from promptops.prompt.chat_template import for_model

        source = for_model
    return source(model)


def render(prompt: Prompt, variables: Mapping[str, str] | None = None, history: Sequence[Turn] = (), *,
           chat_template: ChatTemplateSource | None = None, default_model: str | None = None,
           after: Sequence[Turn] = (), contract: Contract | None = None) -> str:
    """The exact text sent to the model: fields, overridden by `variables`, plus runtime variables.

    `user` defaults to the file's `user` field (or ""), `history` to the rendered turns.
    A chat prompt is rendered by `chat_template` (a ChatTemplate, or a function from model name
    to one); by default the template of the prompt's `model`, else of `default_model`, is read from
    the model repository (cached per model): the caller knows which model serves the prompt.
    The prompt's callable tools go to the template as `tools` where it reads them, else into the
    system message (`with_tools`); `after` (a tool call and its results) follows the last message.
    `contract` replaces the prompt's own (a caller's tools where the prompt declares none).
    Template prompts ignore chat templates and `after`.
    """
    if prompt.is_chat:
        messages = chat_messages(prompt, variables, history, after)
        template = _chat_template(prompt, chat_template, default_model)
        contract = contract or prompt.contract
        tools = [tool.openai() for tool in contract.callable_tools]
        if not template.supports_tools:  # tools into the system message; results as user turns
            messages = with_tools(messages, contract) if tools else tool_results_as_user(messages)
            tools = []
        text = template.apply(messages, tools=tools)
    else:
        values = _values(prompt, variables, render_history(prompt, history) if history else None)
        text = substitute(prompt.template, values)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate from JSON `"\ud800"` or undecodable argv bytes
            raise TemplateError(f"the rendered prompt is not valid Unicode text: lone surrogate "
                                f"U+{ord(text[exc.start]):04X} at position {exc.start}",
                                fix="send UTF-8 text; surrogates only come in pairs") from None
    return text


def _texts_to_check(document: Mapping[str, object], known: set[str]) -> list[tuple[str, object, set[str]]]:
    """(JSON path, text, allowed names) for the template or every message content, and turn_template."""
    messages = document.get("messages")
    if isinstance(messages, list):
        checks = [(f"$.messages[{i}].content", m.get("content"), known - {"history"})
                  for i, m in enumerate(messages) if isinstance(m, dict)]
    else:
        checks = [("$.template", document.get("template"), known)]
    if "turn_template" in document:
        checks.append(("$.turn_template", document.get("turn_template"), {"role", "content"}))
    return checks


def check_placeholders(document: Mapping[str, object], file: str, fields: Iterable[str]) -> list[Problem]:
    """Static checks: syntax, unknown placeholders (errors), unused fields (warnings).

    A chat prompt's message contents are checked like a template, each located by its JSON
    path (`$.messages[1].content`); `{history}` is not a placeholder there (a `{"history": true}`
    entry places past turns), and `turn_template` is ignored (a warning).
    """
    problems: list[Problem] = []
    known = set(fields) | set(RUNTIME_VARIABLES)
    chat = isinstance(document.get("messages"), list)
    used: set[str] = set()
    broken = False
    for path, text, allowed in _texts_to_check(document, known):
        if not isinstance(text, str):
            continue
        try:
            _, placeholders = parse(text)
        except TemplateSyntaxError as exc:
            problems.append(Problem(file, exc.message, path, column=exc.column, fix=exc.fix, code="template-syntax"))
            broken = broken or path != "$.turn_template"
            continue
        for ph in placeholders:
            if path != "$.turn_template":
                used.add(ph.name)
            if ph.name in allowed:
                continue
            if chat and ph.name == "history" and path != "$.turn_template":
                problems.append(Problem(
                    file, f"{{history}} is not a placeholder in a chat prompt (column {ph.column})", path,
                    column=ph.column, fix='add a {"history": true} entry to messages where past turns go '
                                         "(without one they go before the last user message)",
                    code="unknown-placeholder"))
                continue
            hint = ", ".join(f"{{{n}}}" for n in sorted(allowed))
            problems.append(Problem(
                file, f"unknown placeholder {{{ph.name}}} (column {ph.column})", path, column=ph.column,
                fix=f"add a '{ph.name}' field or use one of {hint}", code="unknown-placeholder"))
    if chat:
        problems += _chat_problems(document, file, used if not broken else None)
    where = "the messages" if chat else "the template"
    if ("template" in document or chat) and not broken:
        for name in sorted(set(fields) - used):
            problems.append(Problem(file, f"field '{name}' is never used in {where}", f"$.{name}",
                                    severity="warning", fix=f"use {{{name}}} in {where} or remove the field",
                                    code="unused-field"))
    return problems


def _chat_problems(document: Mapping[str, object], file: str, used: set[str] | None) -> list[Problem]:
    """One history entry at most; {user} used somewhere (unless a content is broken); no turn_template."""
    problems: list[Problem] = []
    messages = document["messages"]
    assert isinstance(messages, list)
    markers = [i for i, m in enumerate(messages) if isinstance(m, dict) and "history" in m]
    for i in markers[1:]:
        problems.append(Problem(file, "only one history entry is allowed", f"$.messages[{i}]",
                                fix="keep a single {\"history\": true} entry", code="duplicate-history"))
    if messages and used is not None and "user" not in used:
        problems.append(Problem(file, "no message uses {user}: the caller's message would be dropped", "$.messages",
                                severity="warning", fix='add {"role": "user", "content": "{user}"}',
                                code="user-unused"))
    if "turn_template" in document:
        problems.append(Problem(file, "turn_template is ignored by chat prompts: the model's chat template "
                                      "formats past turns", "$.turn_template", severity="warning",
                                fix="remove turn_template", code="ignored-key"))
    return problems
