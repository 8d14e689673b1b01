"""Chat tab: pick a prompt and a version, stream answers, see which version served each one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from gateway.auth import Auth
from gateway.serving import Answer, Prepared, sticky_key
from gateway.ui.common import (
    GetService,
    describe_error,
    pin,
    preselect,
    prompt_names,
    resolved_notice,
    ui_identity,
    version_choices,
)
from promptops.errors import PromptOpsError
from promptops.prompt.outputs import Structured

Messages = list[dict[str, Any]]


def footer(prepared: Prepared, answer: Answer) -> str:
    """The line under each answer: which version (and the label that chose it) and model served it, the
    model's token counts and why it stopped."""
    short = prepared.commit[:7] if prepared.commit else "working tree"
    via = f" ({prepared.label})" if prepared.label else ""
    ttft = f" · first token {answer.ttft_s * 1000:.0f} ms" if answer.ttft_s is not None else ""
    usage = f" · {answer.prompt_tokens} + {answer.completion_tokens} tokens ({answer.finish_reason or 'done'})"
    return f"\n\n<sub>served {prepared.name}@{prepared.version}{via} · {short} · {prepared.model}{ttft}{usage}</sub>"


def fenced(value: Any) -> str:
    """A ```json block of `value`, indented 2."""
    return "```json\n" + json.dumps(value, indent=2, ensure_ascii=False) + "\n```"


def call_line(name: str, arguments: Any) -> str:
    """`weather(city="Oslo")`: a call as code reads it (arguments that are not an object shown whole)."""
    if not isinstance(arguments, dict):
        return f"{name}({json.dumps(arguments, ensure_ascii=False)})"
    return f"{name}(" + ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}"
                                  for key, value in arguments.items()) + ")"


def structured_view(prepared: Prepared, answer: str, result: Structured) -> str:
    """Markdown for a finished answer under an output contract: each tool call with its arguments, or the
    parsed JSON formatted, or a plain answer's text; then whether it keeps the contract (in words: Debian's
    Chromium cannot draw some glyphs)."""
    assert prepared.contract is not None  # `read` returned a result, so there is a contract
    json_answer = prepared.contract.answer_schema() is not None
    if result.tool_calls:
        body = "\n\n".join(f"Tool call: `{call_line(call.name, call.arguments)}`\n\n{fenced(call.arguments)}"
                            for call in result.tool_calls)
    elif json_answer and result.value is not None and result.content == answer:
        body = fenced(result.value)
    else:  # not JSON, a regex or choice answer, or a tool prompt's plain answer ({"content": ...})
        body = result.content or answer
    if result.valid:
        mark = "valid against schema" if json_answer else "matches the format"
    else:  # the error in a code span: JSON paths and quotes are not Markdown
        error = (result.errors[0] if result.errors else "the answer breaks the contract").replace("`", "'")
        mark = f"not valid: `{error}`"
    return f"{body}\n\n{mark}"


def build_chat(get: GetService, auth: Auth) -> dict[str, Any]:
    """The Chat tab's components and events; returns the components the page-load event fills."""
    with gr.Row():
        prompt = gr.Dropdown(label="Prompt", choices=[], elem_id="chat-prompt", scale=1)
        version = gr.Dropdown(label="Version", choices=[], elem_id="chat-version", scale=2,
                              info="what the API serves first, then labels, approved versions and drafts")
    notice = gr.Markdown(elem_id="chat-notice")
    # Thumbs on answers go to POST /v1/feedback's store (promptops/state) for the version that answered.
    chatbot = gr.Chatbot(label="Chat", elem_id="chat-log", height=420, feedback_options=("Like", "Dislike"))
    turns = gr.State([])  # what the model saw, without the UI's footers
    answered = gr.State({})  # shown message index -> request id, for feedback
    with gr.Row():
        message = gr.Textbox(label="Message", placeholder="Type a message and press Enter", elem_id="chat-message",
                             scale=4)
        send = gr.Button("Send", variant="primary", elem_id="chat-send", scale=1)
    new_chat = gr.Button("New chat", elem_id="chat-new")

    def on_prompt(name: str | None) -> tuple[Any, str]:
        if not name:
            return gr.update(choices=[], value=None), ""
        service = get()
        try:
            choices = version_choices(service, name)
        except PromptOpsError as exc:
            return gr.update(choices=[], value=None), describe_error(exc)
        value, note = preselect(service, name, choices)
        return gr.update(choices=choices, value=value), note

    async def on_send(ref: str | None, text: str, history: Messages, shown: Messages, ids: dict[int, str],
                      request: gr.Request) -> AsyncIterator[tuple[Messages, Messages, str, str, dict[int, str]]]:
        async for update in answer_turn(ref, text, history, shown, request):
            if len(update) == 5:  # the last update names the request that answered
                ids = {**ids, len(update[0]) - 1: update[4]}
            yield (*update[:4], ids)

    async def answer_turn(ref: str | None, text: str, history: Messages, shown: Messages,
                          request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        if not text.strip():
            yield shown, history, text, ""
            return
        if not ref:
            yield shown, history, text, "Pick a prompt and a version first."
            return
        service = get()
        shown = [*shown, {"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        user, caller = ui_identity(service, auth, request)
        try:
            session = getattr(request, "session_hash", None)  # the browser session keeps its side of a canary
            resolved = await service.serve(ref, user, sticky_key(user, session and f"session:{session}"))
            prepared = service.prepare(resolved, text, history)
        except PromptOpsError as exc:
            shown[-1] = {"role": "assistant", "content": f"**Error:** {exc.message}"}
            yield shown, history, "", describe_error(exc)
            return
        answer, done, note = "", None, resolved_notice(service, resolved)
        yield shown, history, "", note
        try:
            async for event in service.generate(prepared, "ui", caller):
                if isinstance(event, Answer):
                    done = event
                    continue
                answer += event
                shown[-1] = {"role": "assistant", "content": answer}
                yield shown, history, "", note
        except PromptOpsError as exc:
            shown[-1] = {"role": "assistant", "content": f"{answer}\n\n**Error:** {exc.message}"}
            yield shown, history, "", describe_error(exc)
            return
        assert done is not None  # the pipeline always ends with an Answer
        result = prepared.read(answer)
        body = structured_view(prepared, answer, result) if result is not None else answer
        shown[-1] = {"role": "assistant", "content": body + footer(prepared, done)}
        # the next turn sees what the model wrote (the raw JSON of a call too), not the UI's view of it
        history = [*history, {"role": "user", "content": text}, {"role": "assistant", "content": answer}]
        yield shown, history, "", note, prepared.request_id

    async def on_like(ids: dict[int, str], like: gr.LikeData, request: gr.Request) -> str:
        """Thumbs up (1) or down (0) for the version that answered that message."""
        service = get()
        request_id = ids.get(like.index if isinstance(like.index, int) else like.index[0])
        if request_id is None:
            return "Feedback is not recorded for an answer from before a restart."
        user, caller = ui_identity(service, auth, request)
        try:
            await service.feedback(request_id, float(like.liked is True), None, user, caller)
        except PromptOpsError as exc:
            return describe_error(exc)
        return f"Feedback recorded for request {request_id[:8]}."

    def on_version(ref: str | None) -> tuple[Messages, Messages, str, dict[int, str]]:
        """A new version starts a new chat; say so when it is one the API would not serve."""
        if not ref:
            return [], [], "", {}
        service = get()
        try:
            return [], [], resolved_notice(service, service.resolve(ref)), {}
        except PromptOpsError as exc:
            return [], [], describe_error(exc), {}

    # `.input` (user changes only): the page-load pin must not be reset by its own update.
    prompt.input(on_prompt, prompt, [version, notice])
    version.input(on_version, version, [chatbot, turns, notice, answered])
    for trigger in (message.submit, send.click):
        trigger(on_send, [version, message, turns, chatbot, answered], [chatbot, turns, message, notice, answered])
    new_chat.click(on_version, version, [chatbot, turns, notice, answered])
    chatbot.like(on_like, answered, notice)

    def on_load(request: gr.Request) -> tuple[Any, Any, str]:
        # The version value set here is what the first send uses (send reads the version dropdown).
        service = get()
        names = prompt_names(service)
        wanted = request.query_params.get("prompt") if request else None
        try:
            if wanted:
                name, value = pin(service, wanted)
                return (gr.update(choices=names, value=name),
                        gr.update(choices=version_choices(service, name), value=value), f"Pinned to `{value}`.")
            first = names[0] if names else None
            choices = version_choices(service, first) if first else []
            value, note = preselect(service, first, choices) if first else (None, "")
        except PromptOpsError as exc:
            return gr.update(choices=names, value=None), gr.update(choices=[], value=None), describe_error(exc)
        return gr.update(choices=names, value=first), gr.update(choices=choices, value=value), note

    return {"load": (on_load, [prompt, version, notice])}
