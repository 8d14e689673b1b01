"""Prompt Viewer tab: the prompt list, a version's JSON and rendered template, history, labels, canaries, diffs."""

from __future__ import annotations

from typing import Any

import gradio as gr

from gateway.serving import Service
from gateway.ui.common import GetService, describe_error, prompt_names, version_choices
from promptops import canary
from promptops.errors import PromptOpsError
from promptops.prompt import diff as prompt_diff
from promptops.prompt.render import render
from promptops.store import PromptStore

HISTORY_HEADERS = ["version", "approved", "labels", "commit", "author", "date", "message", "tag"]
LABEL_HEADERS = ["label", "version", "commit", "date", "by"]


def label_rows(store: PromptStore, name: str) -> list[list[Any]]:
    """Every move of the prompt's labels (set now, or protected), newest first within each label."""
    labels = store.labels()
    names = sorted(set(labels.of(name)) | set(labels.protected), key=lambda label: (label not in labels.protected,
                                                                                    label))
    rows = []
    for label in names:
        events = store.label_events(name, label)
        while events and events[0].version is None:  # before the label was first set: not a move
            events.pop(0)
        for event in reversed(events):
            rows.append([label, f"v{event.version}" if event.version is not None else "(unset)", event.commit[:7],
                         event.date, event.author])
    return rows


def canary_markdown(service: Service, name: str) -> str:
    """Each label of `name` with a canary: its canary against its primary (promptops.canary), as markdown tables."""
    labels = service.store.labels()
    running = {label: split for label in sorted(labels.of(name)) if (split := labels.canary(name, label))}
    if not running:
        return "No canary runs on this prompt's labels."
    state = service.state
    if state is None:
        return "No request records (state store not configured)."
    parts = []
    for label, split in running.items():
        result = canary.status(state.records(name, label), state.feedback_of(name, label),
                               primary=labels.of(name)[label], canary=split.version)
        lines = [result.columns(), ("---",) * len(result.columns()), *result.rows()]
        parts.append(f"**{canary.heading(name, label, result, split)}**\n\n" +
                     "\n".join("| " + " | ".join(cells) + " |" for cells in lines))
    return "\n\n".join(parts)


def build_viewer(get: GetService) -> dict[str, Any]:
    """The Viewer tab's components and events; returns the components the page-load event fills."""
    with gr.Row():
        prompt = gr.Dropdown(label="Prompt", choices=[], elem_id="view-prompt")
        version = gr.Dropdown(label="Version", choices=[], elem_id="view-version")
    error = gr.Markdown(elem_id="view-error")
    with gr.Row():
        document = gr.Code(label="Prompt JSON", language="json", interactive=False, elem_id="view-json", lines=14)
        rendered = gr.Textbox(label="Rendered template (the prompt's own fields)", lines=14, interactive=False,
                              elem_id="view-rendered")
    history = gr.Dataframe(headers=HISTORY_HEADERS, label="Version history (approvals are git tags)",
                           interactive=False, elem_id="view-history", type="array", wrap=True)
    moves = gr.Dataframe(headers=LABEL_HEADERS, label="Label history (each move is a commit to labels.json)",
                         interactive=False, elem_id="view-labels", type="array", wrap=True)
    with gr.Accordion("Canary: each canary against its label's primary, from the request records", open=True):
        canaries = gr.Markdown(elem_id="view-canary")
    with gr.Row():
        old = gr.Dropdown(label="Diff from", choices=[], elem_id="diff-from")
        new = gr.Dropdown(label="Diff to", choices=[], elem_id="diff-to")
        show = gr.Button("Show diff", elem_id="diff-show")
    diff = gr.Code(label="Diff", language=None, interactive=False, elem_id="diff-output", lines=12)

    def on_prompt(name: str | None) -> tuple[Any, ...]:
        if not name:
            return gr.update(choices=[], value=None), [], [], gr.update(choices=[]), gr.update(choices=[]), ""
        service = get()
        try:
            versions = service.store.versions(name)
            rows = [[v.number, "revoked" if v.revoked else "approved" if v.approved else "", ", ".join(v.labels),
                     v.short, v.author, v.date, v.message, v.tag or ""] for v in reversed(versions)]
            choices = [(label, value) for label, value in version_choices(service, name)
                       if value.partition("@")[2].isdigit()]
            labelled = label_rows(service.store, name)
        except PromptOpsError as exc:
            return gr.update(choices=[], value=None), [], [], gr.update(choices=[]), gr.update(choices=[]), \
                describe_error(exc)
        numbers = [(f"v{v.number}", str(v.number)) for v in reversed(versions)]
        newest = numbers[0][1] if numbers else None
        older = numbers[1][1] if len(numbers) > 1 else newest
        return (gr.update(choices=choices, value=choices[0][1] if choices else None), rows, labelled,
                gr.update(choices=numbers, value=older), gr.update(choices=numbers, value=newest), "")

    def on_version(ref: str | None) -> tuple[str, str, str]:
        if not ref:
            return "", "", ""
        try:
            resolved = get().store.resolve(ref)
        except PromptOpsError as exc:
            return "", "", describe_error(exc)
        try:
            text = render(resolved.prompt, default_model=get().settings.default_model)
        except PromptOpsError as exc:
            text = f"(needs variables to render: {exc.message})"
        return resolved.prompt.to_json(), text, ""

    def on_diff(name: str | None, a: str | None, b: str | None) -> tuple[str, str]:
        if not (name and a and b):
            return "", "Pick a prompt and two versions."
        store = get().store
        try:
            left, right = store.resolve(f"{name}@{a}"), store.resolve(f"{name}@{b}")
        except PromptOpsError as exc:
            return "", describe_error(exc)
        result = prompt_diff.diff_prompts(name, left.prompt, right.prompt, old_label=f"v{a}", new_label=f"v{b}",
                                          default_model=get().settings.default_model)
        text = prompt_diff.to_text([result])
        return text if result.changed else f"{name} v{a} and v{b} are identical.", ""

    def on_canary(name: str | None) -> str:
        if not name:
            return ""
        try:
            return canary_markdown(get(), name)
        except PromptOpsError as exc:
            return describe_error(exc)

    prompt.change(on_prompt, prompt, [version, history, moves, old, new, error])
    prompt.change(on_canary, prompt, canaries)
    version.change(on_version, version, [document, rendered, error])
    show.click(on_diff, [prompt, old, new], [diff, error])

    def on_load() -> Any:
        names = prompt_names(get())
        return gr.update(choices=names, value=names[0] if names else None)

    return {"load": (on_load, [prompt])}
