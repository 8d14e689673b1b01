"""Validation of prompt files: JSON syntax, JSON Schema, names, placeholders and the output contract.

Every finding is a located `Problem` (file, JSON path, line/column where known,
and the fix). `load_prompt_bytes` is the one entry point every reader uses.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from promptops.errors import InvalidName, Problem, PromptInvalid
from promptops.prompt.model import RESERVED_KEYS, Prompt, normalise_config
from promptops.prompt.names import check_name
from promptops.prompt.schema_file import SCHEMA_PATH, schema, schema_bytes  # noqa: F401 (re-exported)

MAX_FILE_BYTES = 1_000_000


@lru_cache(maxsize=4)
def fast_validator(name: str = "prompt") -> Any:
    """A jsonschema-rs validator for one of the packaged schemas ("prompt" or "labels").

    jsonschema-rs answers "valid?" in about a microsecond and imports in ~15 ms; the pure-Python
    jsonschema (`explaining_validator`) is only loaded when a file is invalid, for its located errors.
    """
    import jsonschema_rs

    return jsonschema_rs.validator_for(packaged_schema(name))


@lru_cache(maxsize=4)
def explaining_validator(name: str = "prompt") -> Any:
    """The pure-Python validator (imported lazily: ~50 ms, which `promptops --help` must not pay)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(packaged_schema(name))


@lru_cache(maxsize=4)
def packaged_schema(name: str) -> dict[str, Any]:
    """`schemas/<name>.schema.json`, or the copy packaged with promptops, parsed."""
    if name == "prompt":
        return schema()
    path = SCHEMA_PATH.with_name(f"{name}.schema.json")
    if not path.exists():
        path = Path(__file__).with_name(f"{name}.schema.json")
    return json.loads(path.read_bytes())


def json_path(parts: Iterable[Any]) -> str:
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if re.fullmatch(r"[A-Za-z_$][\w$]*", part) else f"[{json.dumps(part)}]"
    return path


def path_parts(path: str) -> list[Any]:
    """The keys and indexes of a JSON path written by `json_path` (`$.messages[1].content`)."""
    parts: list[Any] = []
    for key, index, quoted in re.findall(r'\.([A-Za-z_$][\w$]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]', path):
        parts.append(int(index) if index else json.loads(quoted) if quoted else key)
    return parts


def _item(text: str, pos: int, index: int) -> int:
    """Offset of item `index` of the JSON array that starts at `pos` (-1 when there is none)."""
    depth, count, in_string, i = 0, 0, False, pos + 1
    while i < len(text) and count < index:
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            if depth == 0:
                return -1
            depth -= 1
        elif char == "," and depth == 0:
            count += 1
        i += 1
    return i if count == index else -1


_COLON = re.compile(r"\s*:\s*")
_SPACE = re.compile(r"\s*")


def line_of(text: str, parts: Iterable[Any]) -> int | None:
    """Best-effort line of a JSON path: find each key in turn after the previous one, array items by index."""
    pos, value, found = 0, -1, False  # value: where the last part's value starts (-1: unknown)
    for part in parts:
        if isinstance(part, int):
            at = _item(text, value, part) if value >= 0 and text.startswith("[", value) else -1
            pos, value = (pos, -1) if at < 0 else (_SPACE.match(text, at).end(),) * 2
            continue
        key = json.dumps(part, ensure_ascii=False)
        at, colon = text.find(key, pos), None
        while at >= 0:  # the same text may appear earlier as a string value: a key is followed by ':'
            colon = _COLON.match(text, at + len(key))
            if colon:
                break
            at = text.find(key, at + 1)
        if at < 0 or colon is None:
            break
        pos, found, value = at, True, colon.end()
    return text.count("\n", 0, pos) + 1 if found else None


def _describe(subschema: Mapping[str, Any]) -> str:
    branch = subschema.get("anyOf", [subschema])[0]
    kind = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
            "array": "a list", "object": "an object"}.get(branch.get("type", ""), "a valid value")
    low = branch.get("minimum", branch.get("exclusiveMinimum"))
    high = branch.get("maximum")
    if low is not None and high is not None:
        kind += f" from {low} to {high}" + (" (exclusive of the lower bound)" if "exclusiveMinimum" in branch else "")
    elif low is not None:
        kind += f" of at least {low}"
    return kind


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


SEED_LAYOUT = 'the seed layout is {"config": {...}, "system": "", "user": "", "template": "{system}{user}"}'


def _errors(document: Any) -> list[Any]:
    """Schema errors; a wrong chat message reports its own branch's errors (role, content, keys)."""
    errors = []
    for error in explaining_validator().iter_errors(document):
        parts = list(error.absolute_path)
        one_message = len(parts) == 2 and parts[0] == "messages"
        if error.validator == "anyOf" and one_message and isinstance(error.instance, dict):
            branch = 1 if "history" in error.instance else 0
            errors += [e for e in error.context if e.relative_schema_path[0] == branch]
        else:
            errors.append(error)
    return sorted(errors, key=lambda e: list(map(str, e.absolute_path)))


def _schema_problems(document: Any, file: str, text: str) -> list[Problem]:
    problems: list[Problem] = []
    for error in _errors(document):
        parts = list(error.absolute_path)
        path = json_path(parts)
        line = line_of(text, parts)
        fix = None
        if error.validator == "oneOf" and not parts:  # exactly one of template / messages
            if "template" in error.instance and "messages" in error.instance:
                message = "a prompt has either 'template' or 'messages', not both"
                fix = "keep `template` for a text prompt, or `messages` for a chat prompt"
            else:
                message = "'template' is required (or 'messages' for a chat prompt)"
                fix = SEED_LAYOUT
            problems.append(Problem(file, message, path, line, fix=fix, code="schema-required"))
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {})
            extras = [k for k in error.instance if k not in allowed and not any(
                re.search(p, k) for p in error.schema.get("patternProperties", {}))]
            for extra in extras:
                where = ("config" if parts == ["config"] else "a test case" if "tests" in parts
                         else "a message" if "messages" in parts else path if parts[:1] and parts[0] in CONTRACT_KEYS
                         else "a prompt")
                hint = _suggest(extra, allowed) or ("fields are named with letters, digits and _" if not parts else
                                                    f"allowed keys: {', '.join(sorted(allowed))}")
                problems.append(Problem(file, f"unknown key '{extra}' in {where}", json_path([*parts, extra]),
                                        line_of(text, [*parts, extra]), fix=hint, code="unknown-key"))
            continue
        if error.validator in ("anyOf", "type", "minimum", "maximum", "exclusiveMinimum"):
            subschema = error.schema if error.validator == "anyOf" else error.schema
            message = f"{path} must be {_describe(subschema)}, got {json.dumps(error.instance)[:60]}"
            if error.validator == "anyOf" and parts[:1] == ["config"]:
                fix = f"set {'.'.join(map(str, parts))} to {_describe(error.schema)}"
        elif error.validator == "required":
            message = error.message.replace("is a required property", "is required")
            fix = SEED_LAYOUT if parts == [] else None
        elif error.validator == "const":
            message = f"{path} must be {json.dumps(error.validator_value)}, got {json.dumps(error.instance)[:60]}"
        elif error.validator == "enum":
            message = f"{path} must be one of {', '.join(map(str, error.validator_value))}"
            fix = _suggest(str(error.instance), map(str, error.validator_value)) or None
        else:
            message = f"{path}: {error.message}"
        problems.append(Problem(file, message, path, line, fix=fix, code=f"schema-{error.validator}"))
    return problems


CONTRACT_KEYS = ("response_format", "tools", "tool_choice")
_CONSTRAINTS = ("structured_outputs", "guided_decoding")


def _pointer_parts(document: Any, pointer: str) -> list[Any]:
    """A JSON pointer's keys and indexes (indexes where the document has a list there), for json_path/line_of."""
    parts: list[Any] = []
    node = document
    for raw in pointer.split("/")[1:]:
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and key.isdigit():
            part: Any = int(key)
            node = node[part] if part < len(node) else None
        else:
            part, node = key, node.get(key) if isinstance(node, dict) else None
        parts.append(part)
    return parts


def _contract_code(message: str) -> str:
    if message.startswith("not a valid JSON Schema"):
        return "contract-schema"
    return "contract-unsupported" if message.startswith("xgrammar") else "contract-tools"


def _contract_problems(document: dict[str, Any], file: str, text: str) -> list[Problem]:
    """The output contract's checks the prompt schema cannot say: embedded schemas (valid, and enforced by the
    model server's engine), tool names, tools on a chat prompt only, and no second constraint in config."""
    # Imported here, and only for a prompt with a contract: `validate` on 1,000 plain prompts must not pay for
    # jsonschema's import (outputs imports it to check the embedded schemas).
    from promptops.prompt.outputs import contract_problems

    found: list[tuple[str, str, str | None, str, str]] = [  # (pointer, message, fix, code, severity)
        (pointer, message, fix, _contract_code(message), "error")
        for pointer, message, fix in contract_problems(document)]
    if document.get("tools") and "messages" not in document:
        found.append(("/tools", "tools need a chat prompt: a template prompt has no place for tool calls",
                      "write the prompt as messages: a chat prompt, rendered by the model's chat template",
                      "contract-tools", "error"))
    fmt = document.get("response_format") or {}
    constrained = "response_format" if fmt.get("type", "text") != "text" else "tools" if document.get("tools") else ""
    config = document.get("config")
    for key in _CONSTRAINTS if constrained and isinstance(config, dict) else ():
        if key in config:
            message = f"config.{key} and {constrained} both constrain the answer: they would conflict"
            verb = "is" if constrained == "response_format" else "are"
            fix = f"drop config.{key}; {constrained} {verb} enforced by the model server"
            found.append((f"/config/{key}", message, fix, "contract-conflict", "error"))
    for key in ("json_schema", "regex", "choice"):
        if key in fmt and fmt.get("type") != key:
            found.append((f"/response_format/{key}", f"response_format.{key} is ignored: the type is "
                                                     f"{fmt.get('type')!r}", f'set "type": "{key}", or drop {key}',
                          "contract-ignored", "warning"))
    problems = []
    for pointer, message, fix, code, severity in found:
        parts = _pointer_parts(document, pointer)
        problems.append(Problem(file, message, json_path(parts), line_of(text, parts), severity=severity, fix=fix,
                                code=code))
    return problems


def reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads` object hook: a JSON object that repeats a key is an error, not a silent overwrite."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def encode_text(text: str, file: str) -> bytes:
    """`text` as UTF-8 bytes; PromptInvalid when it holds a lone surrogate (JSON `"\\ud800"`, argv bytes)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        problem = Problem(file, f"not valid Unicode text: lone surrogate U+{ord(text[exc.start]):04X} "
                                f"at position {exc.start}", fix="send UTF-8 text; surrogates only come in pairs",
                          code="encoding")
        raise PromptInvalid([problem]) from None


def parse_json(data: bytes, file: str, what: str = "a prompt") -> tuple[dict[str, Any] | None, str, list[Problem]]:
    """UTF-8 JSON object with no duplicate keys: (document or None, text, located problems)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, "", [Problem(file, f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", line=line, column=column,
                                  fix="save the file as UTF-8", code="encoding")]
    try:
        document = json.loads(text, object_pairs_hook=reject_duplicates)
    except json.JSONDecodeError as exc:
        return None, text, [Problem(file, f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno,
                                    fix="fix the JSON syntax", code="json")]
    except (ValueError, RecursionError) as exc:
        return None, text, [Problem(file, f"invalid JSON: {exc}", fix="fix the JSON", code="json")]
    if not isinstance(document, dict):
        return None, text, [Problem(file, f"{what} must be a JSON object", fix="start the file with '{'", code="json")]
    return document, text, []


def check_bytes(data: bytes, name: str, file: str) -> tuple[Prompt | None, list[Problem]]:
    """Validate one prompt file's bytes. Returns the prompt (when there are no errors) and every problem."""
    problems: list[Problem] = []
    try:
        check_name(name)
    except InvalidName as exc:
        problems.append(Problem(file, f"file name: {exc.message}", fix=exc.fix, code="bad-name"))
    if len(data) > MAX_FILE_BYTES:
        problems.append(Problem(file, f"file is {len(data):,} bytes; the limit is {MAX_FILE_BYTES:,}",
                                fix="move long text out of the prompt or split it", code="too-large"))
        return None, problems
    document, text, found = parse_json(data, file)
    problems += found
    if document is None:
        return None, problems
    if "\\u" in text:  # only escapes can smuggle in a lone surrogate, which no UTF-8 writer can encode
        try:
            encode_text(json.dumps(document, ensure_ascii=False), file)
        except PromptInvalid as exc:
            return None, problems + exc.problems
    checked = dict(document)
    if isinstance(document.get("config"), dict):
        checked["config"] = normalise_config(document["config"])
    if not fast_validator().is_valid(checked):
        problems += _schema_problems(checked, file, text)
    if any(key in document for key in CONTRACT_KEYS):
        # Only on a well-formed contract: its checks read the shapes the schema guarantees.
        contract_paths = tuple(f"$.{key}" for key in CONTRACT_KEYS)
        if not any(p.json_path.startswith(contract_paths) for p in problems):
            problems += _contract_problems(checked, file, text)
    # Imported here: `validate` with a warm cache checks no file, and the renderer is ~1.5 ms of its start-up.
    from promptops.prompt.render import check_placeholders

    fields = [k for k, v in document.items() if k not in RESERVED_KEYS and isinstance(v, str)]
    for problem in check_placeholders(document, file, fields):
        line = line_of(text, path_parts(problem.json_path))
        problems.append(Problem(problem.file, problem.message, problem.json_path, line, problem.column,
                                problem.severity, problem.fix, problem.code))
    if any(p.severity == "error" for p in problems):
        return None, problems
    return Prompt(name=name, document=document, config=checked["config"]), problems


def load_prompt_bytes(data: bytes, name: str, file: str) -> Prompt:
    """Parse and validate a prompt, raising PromptInvalid (with every problem) on any error."""
    prompt, problems = check_bytes(data, name, file)
    if prompt is None:
        raise PromptInvalid(problems)
    return prompt


def check_file(path: Path, display: str | None = None) -> tuple[Prompt | None, list[Problem]]:
    """Validate a prompt file on disk; its name is the file stem."""
    file = display or str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, [Problem(file, f"cannot read: {exc.strerror}", code="io")]
    return check_bytes(data, os.path.basename(file).removesuffix(".json"), file)
