"""Compare tab: one message to two versions (or two models) side by side, both answers streaming at once.

One Gradio event drives both generations: each side runs in its own asyncio task (the core's chat
pipeline through `Service.generate`, so metrics and cancellation are the chat's) and puts its events on
one queue; the handler yields both outputs as events arrive. Closing the event (the browser went away)
cancels both tasks, and so both Triton requests. `/?a=support@2&b=support@3` pins both sides and opens
this tab.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from gateway.auth import Auth
from gateway.serving import Answer, Prepared, Service
from gateway.ui.common import Choices, GetService, describe_error, pin, prompt_names, ui_identity, versions_for
from promptops.errors import PromptOpsError
from promptops.store import Resolved

SIDES = ("a", "b")
OWN_MODEL = "prompt's model"  # the model dropdown's value for "whatever the version names" (not a model name)
COMPARE_TAB = "compare"


@dataclass
class Side:
    """One side's answer so far and the line under it."""

    text: str = ""
    footer: str = ""


def with_model(service: Service, resolved: Resolved, model: str | None) -> Resolved:
    """`resolved` answered by `model` instead of its own (a chat prompt is re-rendered with that model's template)."""
    own = resolved.prompt.model or service.settings.default_model
    if not model or model == OWN_MODEL or model == own:
        return resolved
    prompt = replace(resolved.prompt, document={**resolved.prompt.document, "model": model})
    return replace(resolved, prompt=prompt)


def model_choices(service: Service, ref: str | None) -> Choices:
    """The version's own model (the default), the gateway's default model, and the version's model by name."""
    default = service.settings.default_model
    own = default
    if ref:
        try:
            own = service.resolve(ref).prompt.model or default
        except PromptOpsError:
            pass
    choices = [(f"{OWN_MODEL} ({own})", OWN_MODEL)]
    for model in dict.fromkeys([own, default]):
        choices.append((model, model))
    return choices


def footer(prepared: Prepared, answer: Answer) -> str:
    """`support@2 (staging) · 1a2b3c4 · echo · 12 + 9 tokens (stop) · first token 61 ms · total 270 ms`."""
    via = f" ({prepared.label})" if prepared.label else ""
    short = prepared.commit[:7] if prepared.commit else "working tree"
    ttft = f"{answer.ttft_s * 1000:.0f} ms" if answer.ttft_s is not None else "none"
    return (f"**{prepared.name}@{prepared.version}**{via} · `{short}` · {prepared.model} · "
            f"{answer.prompt_tokens} + {answer.completion_tokens} tokens ({answer.finish_reason or 'done'}) · "
            f"first token {ttft} · total {answer.total_s * 1000:.0f} ms")


def wants_compare(request: gr.Request | None) -> bool:
    """The page was opened with `?a=` or `?b=`: show this tab first."""
    query = request.query_params if request is not None else {}
    return bool(query.get("a") or query.get("b"))


Event = str | Answer | PromptOpsError


async def race(service: Service, prepared: dict[str, Prepared],
               caller: str | None = None) -> AsyncIterator[tuple[str, Event]]:
    """Both generations at once: yields (side, delta or Answer) in arrival order; a side that fails gets its
    error (a PromptOpsError) as its last event. Closing this generator cancels whatever is still running."""
    queue: asyncio.Queue[tuple[str, Event | None]] = asyncio.Queue()

    async def pump(side: str, request: Prepared) -> None:
        try:
            async for event in service.generate(request, "ui-compare", caller):
                queue.put_nowait((side, event))
        except PromptOpsError as exc:
            queue.put_nowait((side, exc))
        except Exception as exc:  # shown on its side; the other side goes on
            queue.put_nowait((side, PromptOpsError(f"{type(exc).__name__}: {exc}")))
        finally:
            queue.put_nowait((side, None))

    tasks = [asyncio.create_task(pump(side, request)) for side, request in prepared.items()]
    running = len(tasks)
    try:
        while running:
            side, event = await queue.get()
            if event is None:
                running -= 1
                continue
            yield side, event
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def build_compare(get: GetService, auth: Auth) -> dict[str, Any]:
    """The Compare tab's components and events; returns the components the page-load event fills."""
    parts: dict[str, dict[str, Any]] = {}
    with gr.Row():
        for side in SIDES:
            with gr.Column():
                name = side.upper()
                parts[side] = {
                    "prompt": gr.Dropdown(label=f"{name}: prompt", choices=[], elem_id=f"compare-{side}-prompt"),
                    "version": gr.Dropdown(label=f"{name}: version", choices=[], elem_id=f"compare-{side}-version",
                                           info="the same choices as the Chat tab"),
                    "model": gr.Dropdown(label=f"{name}: model", choices=[(OWN_MODEL, OWN_MODEL)], value=OWN_MODEL,
                                         allow_custom_value=True, elem_id=f"compare-{side}-model",
                                         info="the version's own model, or another Triton text model"),
                    "answer": gr.Textbox(label=f"Answer {name}", lines=10, max_lines=30, interactive=False,
                                         elem_id=f"compare-{side}-answer"),
                    "footer": gr.Markdown(elem_id=f"compare-{side}-footer"),
                }
    notice = gr.Markdown(elem_id="compare-notice")
    with gr.Row():
        message = gr.Textbox(label="Message (sent to both)", placeholder="Type a message and press Enter", scale=4,
                             elem_id="compare-message")
        send = gr.Button("Send to both", variant="primary", scale=1, elem_id="compare-send")

    def on_prompt(name: str | None) -> tuple[Any, Any, str]:
        service = get()
        try:
            choices, value, note = versions_for(service, name)
        except PromptOpsError as exc:
            return gr.update(choices=[], value=None), gr.update(), describe_error(exc)
        return (gr.update(choices=choices, value=value),
                gr.update(choices=model_choices(service, value), value=OWN_MODEL), note)

    def on_version(ref: str | None) -> Any:
        return gr.update(choices=model_choices(get(), ref), value=OWN_MODEL)

    async def on_send(text: str, ref_a: str | None, model_a: str | None, ref_b: str | None,
                      model_b: str | None, request: gr.Request) -> AsyncIterator[tuple[str, ...]]:
        sides = {side: Side() for side in SIDES}

        def shown(note: str = "") -> tuple[str, ...]:
            return (sides["a"].text, sides["a"].footer, sides["b"].text, sides["b"].footer, note)

        if not text.strip():
            yield shown("Type a message first.")
            return
        if not (ref_a and ref_b):
            yield shown("Pick a version on both sides first.")
            return
        service = get()
        user, caller = ui_identity(service, auth, request)
        ready: dict[str, Prepared] = {}
        for side, ref, model in (("a", ref_a, model_a), ("b", ref_b, model_b)):
            try:
                resolved = with_model(service, await service.serve(ref, user), model)
                ready[side] = service.prepare(resolved, text)
            except PromptOpsError as exc:
                sides[side].footer = describe_error(exc)
        yield shown()
        async with aclosing(race(service, ready, caller)) as events:
            async for side, event in events:
                current = sides[side]
                if isinstance(event, PromptOpsError):
                    current.footer = f"**Error:** {describe_error(event)}"
                elif isinstance(event, Answer):
                    current.footer = footer(ready[side], event)
                else:
                    current.text += event
                yield shown()

    for side in SIDES:
        part = parts[side]
        part["prompt"].input(on_prompt, part["prompt"], [part["version"], part["model"], notice])
        part["version"].input(on_version, part["version"], part["model"])
    inputs = [message, parts["a"]["version"], parts["a"]["model"], parts["b"]["version"], parts["b"]["model"]]
    outputs = [parts["a"]["answer"], parts["a"]["footer"], parts["b"]["answer"], parts["b"]["footer"], notice]
    for trigger in (message.submit, send.click):
        trigger(on_send, inputs, outputs)

    def on_load(request: gr.Request) -> tuple[Any, ...]:
        """Both sides from `?a=`/`?b=`; else the first prompt, A on what Chat would preselect, B on the next choice."""
        service = get()
        names = prompt_names(service)
        query = request.query_params if request is not None else {}
        out: list[Any] = []
        try:
            first = names[0] if names else None
            choices, value, note = versions_for(service, first)
            values = {"a": value, "b": next((v for _, v in choices if v != value), value)}
            for side in SIDES:
                name, ref = first, values[side]
                if query.get(side):
                    name, ref = pin(service, str(query[side]))
                side_choices = choices if name == first else versions_for(service, name)[0]
                out += [gr.update(choices=names, value=name), gr.update(choices=side_choices, value=ref),
                        gr.update(choices=model_choices(service, ref), value=OWN_MODEL)]
        except PromptOpsError as exc:
            return (*[gr.update()] * 6, describe_error(exc))
        pinned = [str(query[side]) for side in SIDES if query.get(side)]
        return (*out, f"Pinned: {' vs '.join(f'`{ref}`' for ref in pinned)}." if pinned else note)

    loaded = [parts[side][key] for side in SIDES for key in ("prompt", "version", "model")]
    return {"load": (on_load, [*loaded, notice])}
