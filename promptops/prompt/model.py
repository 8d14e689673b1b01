"""The prompt model: a parsed, validated, normalised prompt document."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptops.prompt.outputs import Contract

RESERVED_KEYS = frozenset({"$schema", "description", "model", "models", "config", "template", "messages",
                           "turn_template", "tests", "response_format", "tools", "tool_choice"})
RUNTIME_VARIABLES = ("user", "history")
DEFAULT_TURN_TEMPLATE = "{role}: {content}\n"
_NUMBER = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*")
_INTEGER = re.compile(r"\s*[-+]?\d+\s*")

# The seed project's default template, byte for byte in meaning: string numbers included.
SEED_TEMPLATE: dict[str, Any] = {
    "config": {"temperature": "1.0", "top_p": "0.95", "max_tokens": "256"},
    "system": "",
    "user": "",
    "template": "{system}{user}",
}

# What `promptops new` writes: a chat prompt, rendered by the served model's own chat template.
# Measured on the embedded SmolLM2-135M: greedy decoding and "one short sentence" answer
# "capital of Germany" with Berlin and stop; "Answer briefly and accurately." rambled for 256 tokens.
NEW_PROMPT: dict[str, Any] = {
    "description": "",
    "config": {"temperature": 0, "max_tokens": 128},
    "system": "You are a helpful assistant. Answer in one short sentence.",
    "messages": [
        {"role": "system", "content": "{system}"},
        {"role": "user", "content": "{user}"},
    ],
}

# What `promptops new --json` writes: the same chat prompt, answering JSON under a small schema that the
# model server enforces while it decodes (promptops.prompt.outputs). The answer's maxLength (which xgrammar
# enforces) keeps the JSON within max_tokens, so it always closes.
NEW_JSON_PROMPT: dict[str, Any] = {
    "description": "",
    "config": {"temperature": 0, "max_tokens": 256},
    "system": "You are a helpful assistant. Answer in JSON: the answer in one short sentence, "
              "and your confidence in it from 0 to 1.",
    "messages": [
        {"role": "system", "content": "{system}"},
        {"role": "user", "content": "{user}"},
    ],
    "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
        "type": "object",
        "properties": {"answer": {"type": "string", "maxLength": 300},
                       "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
        "required": ["answer", "confidence"],
        "additionalProperties": False,
    }}},
}


@dataclass(frozen=True)
class Prompt:
    """A valid prompt document. `document` is the file as written; `config` is normalised."""

    name: str
    document: Mapping[str, Any]
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_chat(self) -> bool:
        """A chat prompt (`messages`, rendered by the model's chat template) rather than a `template`."""
        return "messages" in self.document

    @property
    def template(self) -> str:
        """The `template` text ("" for a chat prompt)."""
        return str(self.document.get("template", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        """A chat prompt's entries: `{role, content}` messages and at most one `{"history": true}`."""
        return [dict(m) for m in self.document.get("messages", [])]

    @property
    def turn_template(self) -> str:
        return str(self.document.get("turn_template", DEFAULT_TURN_TEMPLATE))

    @property
    def fields(self) -> dict[str, str]:
        """Every non-reserved key: the values substituted for `{key}`."""
        return {k: v for k, v in self.document.items() if k not in RESERVED_KEYS}

    @property
    def model(self) -> str | None:
        return self.document.get("model")

    @property
    def description(self) -> str:
        return str(self.document.get("description", ""))

    @property
    def contract(self) -> Contract:
        """The output contract: `response_format`, `tools` and `tool_choice` (promptops.prompt.outputs)."""
        from promptops.prompt.outputs import of

        return of(self.document)

    @property
    def tests(self) -> list[dict[str, Any]]:
        return list(self.document.get("tests", []))

    def to_json(self) -> str:
        """The document as promptops writes it: 2-space indent, key order kept, final newline."""
        return dump_document(self.document)


def dump_document(document: Mapping[str, Any]) -> str:
    """Serialise a prompt document the way every promptops writer does."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def normalise_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Numeric strings ("0.95", "256") become numbers; everything else is kept."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        # Only strings that look like numbers: float() would also take "nan" and "inf".
        if isinstance(value, str) and key != "stop" and _NUMBER.fullmatch(value):
            out[key] = int(value) if _INTEGER.fullmatch(value) else float(value)
        else:
            out[key] = value
    return out
