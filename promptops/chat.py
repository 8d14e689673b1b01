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
`developer`, `function`) is refused: the prompt's system text is reviewed code. For a prompt with
tools, the turns after the last user message are the model's calls (an assistant's `tool_calls`, put
back as the JSON the model wrote) and their results (`role: tool`); they follow the prompt's messages.

A prompt's output contract (`response_format`, `tools`: promptops.prompt.outputs) is sent as the
`structured_outputs` sampling key, so the model server constrains decoding; `Prepared.read(text)`
parses the answer into JSON or tool calls.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from promptops.errors import EmptyPrompt, PromptInvalid, PromptOpsError
from promptops.prompt.model import Prompt, dump_document
from promptops.prompt.outputs import Contract, Structured
from promptops.prompt.render import ChatTemplateSource, Turn, chat_messages, render
from promptops.triton.client import Answer

if TYPE_CHECKING:
    from promptops.store import Resolved

MESSAGE_ROLES = ("user", "assistant")  # roles of past turns and OpenAI-style `messages` a caller may send
CALLER_ROLES = (*MESSAGE_ROLES, "tool")  # `tool`: a tool's result, only for a prompt with tools


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
    contract: Contract | None = None  # the output contract the model server enforces; None: free text
    canary: bool = False  # a label's canary chose the version (promptops/split.py)
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)  # the values rendered, `user` included
    history: tuple[Turn, ...] = field(default=(), repr=False)  # the past turns rendered
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # names this request in records and feedback

    @property
    def number(self) -> int | None:
        """The version number (None for a draft or an inline prompt)."""
        return int(self.version) if self.version.isdigit() else None

    def read(self, text: str) -> Structured | None:
        """The answer checked against the contract (parsed JSON, tool calls); None without a contract."""
        return self.contract.read(text) if self.contract is not None else None

    def describe(self) -> dict[str, Any]:
        """Which prompt version and model answered, for final events and JSON answers."""
        return {"prompt": self.name, "version": self.version, "commit": self.commit or None,
                "approved": self.approved, "label": self.label, "canary": self.canary, "model": self.model,
                "request_id": self.request_id}


def check_caller_role(role: Any, where: str) -> None:
    """The one rule for what a caller's turn may be, at every door (history, OpenAI messages, the UI):
    user, assistant, or tool (a tool's result, for a prompt with tools: `prepare` checks that). A system
    turn is refused: the prompt's system text is reviewed code."""
    if role in ("system", "developer"):
        raise PromptOpsError(
            f"{where} is a {role} message: the prompt's system text is reviewed code and a caller "
            "cannot replace or extend it",
            fix="drop it; change the prompt file's system text in a new version, and send what varies "
                "per request in the user message")
    if role not in CALLER_ROLES:
        raise PromptOpsError(f"{where} has role {role!r}, which a prompt cannot take",
                             fix="send only user and assistant messages, and tool results for a prompt with tools")


def _turn(item: Mapping[str, Any] | Turn, where: str) -> Turn:
    if isinstance(item, Turn):
        check_caller_role(item.role, where)
        return item
    role = item.get("role")
    check_caller_role(role, where)
    calls = item.get("tool_calls") if role == "assistant" else None
    if calls:  # a past call goes back as the model wrote it: {"name": ..., "arguments": {...}}
        texts = [_call_text(call, f"{where}.tool_calls[{i}]") for i, call in enumerate(calls)]
        return Turn("assistant", "\n".join(texts))
    return Turn(str(role), _text(item.get("content")))


def _call_text(call: Any, where: str) -> str:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise PromptOpsError(f"{where} is not a function call", fix='send {"type": "function", "function": '
                                                                     '{"name": ..., "arguments": "{...}"}}')
    arguments = function.get("arguments") or "{}"
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        raise PromptOpsError(f"{where}.function.arguments is not JSON",
                             fix="send the arguments the model returned") from None
    return json.dumps({"name": function["name"], "arguments": parsed}, ensure_ascii=False)


def to_turns(history: Sequence[Mapping[str, Any]] | Sequence[Turn]) -> list[Turn]:
    """`[{role, content}]` (or Turns) as Turns; a role other than user, assistant or tool is refused
    (`check_caller_role`); an assistant's `tool_calls` become the call's JSON text."""
    return [_turn(item, f"history[{index}]") for index, item in enumerate(history)]


def split_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[Turn], list[Turn]]:
    """OpenAI-style messages as (the user's message, the history before it, the turns after it).

    The turns after the last user message are the model's tool calls and their results (`role: tool`);
    without tools the last message must be the user's. See the module docstring."""
    if not messages:
        raise PromptOpsError("no messages", fix='send at least {"role": "user", "content": "..."}')
    turns = [_turn(item, f"messages[{index}]") for index, item in enumerate(messages)]
    last_user = max((i for i, turn in enumerate(turns) if turn.role == "user"), default=None)
    if last_user is None or (last_user != len(turns) - 1 and turns[-1].role != "tool"):
        last = messages[-1].get("role")
        raise PromptOpsError(f"the last message must be the user's (or a tool result), not {last!r}",
                             fix='end `messages` with {"role": "user", ...}')
    return turns[last_user].content, turns[:last_user], turns[last_user + 1:]


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
    asked = [key for key in ("structured_outputs", "guided_decoding") if overrides.get(key) is not None]
    if asked and ((contract := prompt.contract).declares_format or contract.tools):
        from promptops.errors import ContractRefused

        raise ContractRefused(f"config.{asked[0]} would replace the output contract {prompt.name} declares",
                              fix=f"drop {asked[0]} from the request: the prompt's own constraint applies")
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
            chat_template: ChatTemplateSource | None = None, after: Sequence[Mapping[str, Any]] | Sequence[Turn] = (),
            contract: Contract | None = None) -> Prepared:
    """Render `target` for `message` (its `{user}`; None keeps the prompt's own `user` field) after `history`.

    `target` is a resolved version (its version, commit, approval and label are taken from it) or a
    bare prompt (`version` names it, default "inline"). `variables` override the prompt's fields.
    The model is the prompt's `model`, else `default_model`; a chat prompt is rendered with that
    model's chat template unless `chat_template` is given. `source` names the prompt in messages.
    `after`: the turns after the caller's message (tool calls and `tool` results, `split_messages`).
    The output contract (`contract`, default the prompt's own: promptops.prompt.outputs) goes into the
    sampling parameters as `structured_outputs`, so the model server enforces it.

    Raises EmptyPrompt (nothing to send), PromptInvalid (overrides the schema refuses), TemplateError
    and PromptOpsError (an unknown history role).
    """
    canary = False
    if isinstance(target, Prompt):
        prompt = target
        version = version or "inline"
    else:
        prompt = target.prompt
        version = version or ("draft" if target.version is None else str(target.version.number))
        commit, approved, label = commit or target.commit or "", target.approved, target.label
        canary = target.canary
    if source is None:
        source = "the posted prompt" if version == "inline" else (
            f"{prompt.name} ({'draft' if version == 'draft' else 'v' + version})")
    values = dict(variables or {})
    if message is not None:
        values["user"] = message
    model = prompt.model or default_model
    contract = contract or prompt.contract
    turns, tail = to_turns(history), to_turns(after)
    if not contract.tools and any(turn.role == "tool" for turn in (*turns, *tail)):
        raise PromptOpsError(f"the conversation holds a tool result, but {source} has no tools to call",
                             fix="send only user and assistant messages to this prompt")
    text = render(prompt, values, turns, chat_template=chat_template, default_model=model, after=tail,
                  contract=contract)
    if _is_blank_chat(prompt, values) if prompt.is_chat else not text.strip():
        what = ("has an empty user message: an empty prompt, nothing for the model to answer" if prompt.is_chat
                else "rendered to an empty prompt: there is nothing to send to the model")
        raise EmptyPrompt(f"{source} {what}", fix="send a non-empty message, or give the prompt text of its own")
    sampling = contract.sampling(with_overrides(prompt, overrides or {}))
    return Prepared(name=prompt.name, version=version, commit=commit, model=model, text=text,
                    sampling=sampling, approved=approved, label=label, source=source,
                    contract=contract if contract.enforced else None, canary=canary, variables=values,
                    history=tuple(turns))


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
