"""Safe template rendering and static placeholder checks.

Templates are never passed to `str.format`: that would evaluate `{x.__class__}`,
`{x[0]}` and format specs. Instead a small scanner accepts exactly `{name}`,
`{{` and `}}`, and everything else is a located error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from promptops.errors import Problem, TemplateError
from promptops.prompt import RUNTIME_VARIABLES, Prompt

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


def render(prompt: Prompt, variables: Mapping[str, str] | None = None, history: Sequence[Turn] = ()) -> str:
    """The exact text sent to the model: fields, overridden by `variables`, plus runtime variables.

    `user` defaults to the file's `user` field (or ""), `history` to the rendered turns.
    """
    values: dict[str, str] = {name: "" for name in RUNTIME_VARIABLES}
    values.update(prompt.fields)
    if history:
        values["history"] = render_history(prompt, history)
    for key, value in (variables or {}).items():
        if not isinstance(value, str):
            raise TemplateError(f"variable {key!r} must be a string, got {type(value).__name__}")
        values[key] = value
    text = substitute(prompt.template, values)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate from JSON `"\ud800"` or undecodable argv bytes
            raise TemplateError(f"the rendered prompt is not valid Unicode text: lone surrogate "
                                f"U+{ord(text[exc.start]):04X} at position {exc.start}",
                                fix="send UTF-8 text; surrogates only come in pairs") from None
    return text


def check_placeholders(document: Mapping[str, object], file: str, fields: Iterable[str]) -> list[Problem]:
    """Static checks: syntax, unknown placeholders (errors), unused fields (warnings)."""
    problems: list[Problem] = []
    known = set(fields) | set(RUNTIME_VARIABLES)
    used: set[str] = set()
    checks = [("template", known, "$.template")]
    if "turn_template" in document:
        checks.append(("turn_template", {"role", "content"}, "$.turn_template"))
    for key, allowed, path in checks:
        text = document.get(key)
        if not isinstance(text, str):
            continue
        try:
            _, placeholders = parse(text)
        except TemplateSyntaxError as exc:
            problems.append(Problem(file, exc.message, path, column=exc.column, fix=exc.fix, code="template-syntax"))
            continue
        for ph in placeholders:
            if key == "template":
                used.add(ph.name)
            if ph.name not in allowed:
                hint = ", ".join(f"{{{n}}}" for n in sorted(allowed))
                problems.append(Problem(
                    file, f"unknown placeholder {{{ph.name}}} (column {ph.column})", path, column=ph.column,
                    fix=f"add a '{ph.name}' field or use one of {hint}", code="unknown-placeholder"))
    template_broken = any(p.code == "template-syntax" and p.json_path == "$.template" for p in problems)
    if "template" in document and not template_broken:
        for name in sorted(set(fields) - used):
            problems.append(Problem(file, f"field '{name}' is never used in the template", f"$.{name}",
                                    severity="warning", fix=f"use {{{name}}} in the template or remove the field",
                                    code="unused-field"))
    return problems
