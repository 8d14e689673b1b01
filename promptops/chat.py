"""The one chat pipeline: prepare (render and check) a prompt for a message, then generate its answer.

Every door that sends a prompt to the model goes through here: the gateway (`gateway/serving.py`,
which adds metrics, per-caller limits and the max_tokens cap on top), the Gradio UI (through the
gateway's Service), `promptops chat` and the test runner (`promptops.evaluation.runner.run_tests`, and so
`promptops test` and `promptops review --outputs`). It prints nothing and imports no web or CLI
framework.

- `prepare(prompt_or_resolved, message, history, overrides, default_model=...)` renders a template
  prompt or a chat prompt (through the served model's chat template) with the caller's message as
  `{user}` and the past turns as history, validates sampling overrides with the prompt schema and
  refuses an empty prompt (`EmptyPrompt`): a template prompt that rendered to whitespace only, or
  a chat prompt whose own user messages are empty (its rendered text always holds the template's
  markup, so the markup is not what is checked).
- `generate(client, prepared)` yields the text deltas, then one `Answer` (promptops.triton.client, the
  one answer type): the model's own token counts (`num_input_tokens`/`num_output_tokens`), its finish
  reason, log probabilities when asked, and the time to first token and total time from the clock.
  Nothing is estimated.
- `complete(client, prepared)` is the same, collected into the `Answer`.

Messages in the OpenAI shape (`[{role, content}]`) map onto a prompt by `split_messages`: the last
message must be the user's and becomes `{user}`; earlier `user`/`assistant` turns become the
history, placed where the prompt puts it (`{history}` in a template prompt; the `{"history": true}`
entry, else before the last user message, in a chat prompt). A caller's `system` message (or
`developer`, `tool`, `function`) is refused: the prompt's system text is reviewed code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from promptops.errors import EmptyPrompt, PromptInvalid, PromptOpsError
from promptops.prompt.model import Prompt, dump_document
from promptops.prompt.render import ChatTemplateSource, Turn, chat_messages, render
from promptops.triton.client import Answer

if TYPE_CHECKING:
    from promptops.store import Resolved

MESSAGE_ROLES = ("user", "assistant")  # roles of past turns and OpenAI-style `messages` a caller may send


class Streamer(Protocol):
    """What the pipeline needs from an inference client (promptops.triton.client.InferenceClient)."""

    def stream(self, model: str, prompt: str, sampling: Mapping[str, Any] | None = None, *,
               logprobs: bool = False, timeout_s: float | None = None) -> AsyncIterator[str | Answer]: ...


@dataclass(frozen=True)
class Prepared:
    """A request ready for the model: which prompt version, the rendered text, the model and sampling."""

    name: str
    version: str  # "3"; "draft" for the working-tree file; "inline" for a prompt that is no version
    commit: str
    model: str
    text: str
    sampling: Mapping[str, Any]
    approved: bool = False
    label: str | None = None  # the release label that chose the version (`production` for a bare name)
    source: str = ""  # how messages name the prompt: "prompts/support.json (v3)", "the posted prompt"

    def describe(self) -> dict[str, Any]:
        """Which prompt version and model answered, for final events and JSON answers."""
        return {"prompt": self.name, "version": self.version, "commit": self.commit or None,
                "approved": self.approved, "label": self.label, "model": self.model}


def check_caller_role(role: Any, where: str) -> None:
    """The one rule for what a caller's turn may be, at every door (history, OpenAI messages, the UI):
    user or assistant. A system turn is refused: the prompt's system text is reviewed code."""
    if role in ("system", "developer"):
        raise PromptOpsError(
            f"{where} is a {role} message: the prompt's system text is reviewed code and a caller "
            "cannot replace or extend it",
            fix="drop it; change the prompt file's system text in a new version, and send what varies "
                "per request in the user message")
    if role not in MESSAGE_ROLES:
        raise PromptOpsError(f"{where} has role {role!r}, which a prompt cannot take",
                             fix="send only user and assistant messages (tools are not supported)")


def to_turns(history: Sequence[Mapping[str, Any]] | Sequence[Turn]) -> list[Turn]:
    """`[{role, content}]` (or Turns) as Turns; a role other than user or assistant is refused (`check_caller_role`)."""
    turns = []
    for index, item in enumerate(history):
        role, content = (item.role, item.content) if isinstance(item, Turn) else (item["role"], item["content"])
        check_caller_role(role, f"history[{index}]")
        turns.append(Turn(role, content if isinstance(content, str) else str(content)))
    return turns


def split_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[Turn]]:
    """OpenAI-style messages as (the user's message, the history before it); see the module docstring."""
    if not messages:
        raise PromptOpsError("no messages", fix='send at least {"role": "user", "content": "..."}')
    for index, item in enumerate(messages):
        check_caller_role(item.get("role"), f"messages[{index}]")
    *past, last = messages
    if last.get("role") != "user":
        raise PromptOpsError(f"the last message must be the user's, not {last.get('role')!r}",
                             fix='end `messages` with {"role": "user", ...}')
    return _text(last.get("content")), [Turn(str(m["role"]), _text(m.get("content"))) for m in past]


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of parts."""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content
                       if isinstance(part, Mapping) and part.get("type") == "text")
    return "" if content is None else str(content)


def with_overrides(prompt: Prompt, overrides: Mapping[str, Any]) -> Mapping[str, Any]:
    """The prompt's sampling config with `overrides` applied, validated by the prompt schema."""
    if not overrides:
        return prompt.config
    from promptops.prompt.schema import check_bytes, encode_text

    document = dict(prompt.document)
    document["config"] = {**dict(document.get("config", {})), **overrides}
    file = f"{prompt.name} (overrides)"
    checked, problems = check_bytes(encode_text(dump_document(document), file), prompt.name, file)
    if checked is None:
        raise PromptInvalid(problems)
    return checked.config


def _is_blank_chat(prompt: Prompt, variables: Mapping[str, str]) -> bool:
    """A chat prompt whose own user messages are all empty once filled (past turns do not count)."""
    filled = chat_messages(prompt, variables)
    users = [m["content"] for m in filled if m["role"] == "user"]
    return not any(content.strip() for content in users)


def prepare(target: Prompt | Resolved, message: str | None = None,
            history: Sequence[Mapping[str, Any]] | Sequence[Turn] = (), overrides: Mapping[str, Any] | None = None,
            *, default_model: str, variables: Mapping[str, str] | None = None, version: str | None = None,
            commit: str = "", approved: bool = False, label: str | None = None, source: str | None = None,
            chat_template: ChatTemplateSource | None = None) -> Prepared:
    """Render `target` for `message` (its `{user}`; None keeps the prompt's own `user` field) after `history`.

    `target` is a resolved version (its version, commit, approval and label are taken from it) or a
    bare prompt (`version` names it, default "inline"). `variables` override the prompt's fields.
    The model is the prompt's `model`, else `default_model`; a chat prompt is rendered with that
    model's chat template unless `chat_template` is given. `source` names the prompt in messages.

    Raises EmptyPrompt (nothing to send), PromptInvalid (overrides the schema refuses), TemplateError
    and PromptOpsError (an unknown history role).
    """
    if isinstance(target, Prompt):
        prompt = target
        version = version or "inline"
    else:
        prompt = target.prompt
        version = version or ("draft" if target.version is None else str(target.version.number))
        commit, approved, label = commit or target.commit or "", target.approved, target.label
    if source is None:
        source = "the posted prompt" if version == "inline" else (
            f"{prompt.name} ({'draft' if version == 'draft' else 'v' + version})")
    values = dict(variables or {})
    if message is not None:
        values["user"] = message
    model = prompt.model or default_model
    text = render(prompt, values, to_turns(history), chat_template=chat_template, default_model=model)
    if _is_blank_chat(prompt, values) if prompt.is_chat else not text.strip():
        what = ("has an empty user message: an empty prompt, nothing for the model to answer" if prompt.is_chat
                else "rendered to an empty prompt: there is nothing to send to the model")
        raise EmptyPrompt(f"{source} {what}", fix="send a non-empty message, or give the prompt text of its own")
    sampling = with_overrides(prompt, overrides or {})
    return Prepared(name=prompt.name, version=version, commit=commit, model=model, text=text,
                    sampling=sampling, approved=approved, label=label, source=source)


def generate(client: Streamer, prepared: Prepared, *, logprobs: bool = False,
             timeout_s: float | None = None, metadata: Mapping[str, str] | None = None) -> AsyncIterator[str | Answer]:
    """Yield the answer's text deltas as the model streams them, then one `Answer`.

    `logprobs=True` asks the model for log probabilities (the sampling `logprobs` key, default 0, says
    how many alternatives per token). Closing this generator (or cancelling its task) cancels the
    request on the server. Raises the client's errors (ServerUnavailable, ModelNotFound, ModelError,
    InferenceTimeout). `metadata` goes with the gRPC call (the gateway's `traceparent`: gateway/tracing.py).
    """
    if metadata:
        return client.stream(prepared.model, prepared.text, prepared.sampling, logprobs=logprobs,
                             timeout_s=timeout_s, metadata=metadata)
    return client.stream(prepared.model, prepared.text, prepared.sampling, logprobs=logprobs, timeout_s=timeout_s)


async def complete(client: Streamer, prepared: Prepared, *, logprobs: bool = False,
                   timeout_s: float | None = None) -> Answer:
    """The whole answer (streamed internally, so the time to first token is measured too)."""
    events = generate(client, prepared, logprobs=logprobs, timeout_s=timeout_s)
    async with aclosing(events):
        async for event in events:
            if isinstance(event, Answer):
                return event
    raise AssertionError("a stream always ends with an Answer")


__all__ = ["Answer", "Streamer", "Prepared", "check_caller_role", "complete", "generate", "prepare",
           "split_messages", "to_turns", "with_overrides"]
