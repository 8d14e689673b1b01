"""Prompt Creator / Editor tab: seed template or an existing version, live validation, save, approve, promote.

Save is `store.save` (validate + git commit) with the commit the edit started from,
so a save based on a replaced version is refused with the current version number.
Promote is `store.promote(..., commit=True)`: the core checks every label rule.
Every write is done as the person this browser is signed in as (its session cookie, gateway/auth.py),
with the role the API asks for: commits, approval tags and label moves record them.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from gateway.auth import Auth, read_only, ui_caller
from gateway.settings import GatewaySettings
from gateway.ui.common import GetService, describe_error, prompt_names
from promptops.config.users import User
from promptops.errors import PromptOpsError
from promptops.prompt.model import SEED_TEMPLATE, dump_document
from promptops.prompt.schema import check_bytes

# {"name": str, "commit": str, "number": int} of the version being edited; None for a new prompt
Base = dict[str, Any] | None
SUGGESTED_LABELS = ["production", "staging"]
SIGN_IN = "Sign in first: open the sign-in link `promptops serve` printed (or /signin with a token)."


class NotSignedIn(PromptOpsError):
    """The browser has no valid session: shown as the sign-in note."""


def acting(auth: Auth, settings: GatewaySettings, request: gr.Request, role: str, action: str) -> User:
    """The signed-in person, when they may do `action` (the API's checks: read-only clone, session, role)."""
    read_only(settings)
    user = ui_caller(auth, request)
    if user is None:
        raise NotSignedIn(SIGN_IN)
    user.require(role, action)
    return user


def validation_report(name: str, text: str) -> str:
    """Markdown: every problem the core finds in `text` as prompt `name`, or that it is valid."""
    if not name:
        return "**Give the prompt a name.**"
    _, problems = check_bytes(text.encode("utf-8"), name, f"{name}.json")
    if not problems:
        return "Valid prompt."
    lines = [f"- **{'error' if p.severity == 'error' else 'warning'}** `{p.location()}`: {p.message}"
             + (f" — *{p.fix}*" if p.fix else "") for p in problems]
    heading = "**Invalid — fix these before saving:**" if any(p.severity == "error" for p in problems) else \
        "Valid, with warnings:"
    return heading + "\n" + "\n".join(lines)


def editing_label(name: str, base: Base) -> str:
    return f"Editing **{name}** from v{base['number']} ({base['commit'][:7]})" if base else \
        f"New prompt **{name or '…'}** (not saved yet)"


def build_editor(get: GetService, settings: GatewaySettings, auth: Auth) -> dict[str, Any]:
    """The Editor tab's components and events; returns the components the page-load event fills."""
    writable = not settings.read_only
    with gr.Row():
        existing = gr.Dropdown(label="Open a prompt", choices=[], elem_id="edit-open")
        name = gr.Textbox(label="Prompt name", elem_id="edit-name", placeholder="e.g. support")
        new = gr.Button("New from seed template", elem_id="edit-new")
    state = gr.Markdown(elem_id="edit-state")
    base = gr.State(None)
    editor = gr.Code(label="Prompt JSON", language="json", interactive=writable, lines=18, elem_id="edit-json")
    report = gr.Markdown(elem_id="edit-validation")
    message = gr.Textbox(label="Commit message", placeholder="What changed and why", elem_id="edit-message")
    with gr.Row():
        save = gr.Button("Save (git commit)", variant="primary", interactive=writable, elem_id="edit-save")
        approve = gr.Button("Approve this version", visible=settings.allow_approve and writable,
                            elem_id="edit-approve")
    with gr.Row(visible=writable):
        label = gr.Dropdown(label="Label", choices=SUGGESTED_LABELS, value=None, allow_custom_value=True,
                            elem_id="edit-label", info="pick one or type a new label", scale=2)
        promote = gr.Button("Promote to label (git commit)", elem_id="edit-promote", scale=1)
    result = gr.Markdown("" if writable else "This gateway serves a read-only clone: edit in the source repository.",
                         elem_id="edit-result")

    def on_open(chosen: str | None) -> tuple[Any, ...]:
        if not chosen:
            return gr.update(), gr.update(), None, "", ""
        try:
            resolved = get().store.resolve(f"{chosen}@head")
        except PromptOpsError as exc:
            return gr.update(), gr.update(), None, "", describe_error(exc)
        assert resolved.version is not None
        current = {"name": chosen, "commit": resolved.version.commit, "number": resolved.version.number}
        return chosen, resolved.prompt.to_json(), current, editing_label(chosen, current), ""

    def on_new(current_name: str) -> tuple[Any, ...]:
        return dump_document(SEED_TEMPLATE), None, editing_label(current_name, None), ""

    def on_save(prompt: str, text: str, current: Base, note: str, request: gr.Request) -> tuple[Any, ...]:
        service = get()
        try:
            user = acting(auth, service.settings, request, "editor", "save prompts")
            version = service.store.save(prompt, text, base_commit=current["commit"] if current else None,
                                         author_name=user.name, author_email=user.email,
                                         message=note or f"Update prompt {prompt} (UI)")
        except PromptOpsError as exc:
            extra = ""
            if getattr(exc, "current_version", None):
                extra = f"\n\nRefused: version {exc.current_version} is current. Reload it, re-apply your edit, save."
            return current, describe_error(exc) + extra, gr.update()
        saved = {"name": prompt, "commit": version.commit, "number": version.number}
        text_out = f"Saved **{prompt} v{version.number}** as commit `{version.short}`" + (
            " (already approved)" if version.approved else " — a draft until approved.")
        return saved, text_out, gr.update(choices=prompt_names(service), value=prompt)

    def on_approve(prompt: str, current: Base, request: gr.Request) -> str:
        service = get()
        if not current:
            return "Save or open a version first: only committed versions can be approved."
        try:
            user = acting(auth, service.settings, request, "approver", "approve or revoke versions")
            if not service.settings.allow_approve:
                return "Approving is disabled on this gateway."
            version, created = service.store.approve(prompt, current["number"], approver=user.identity)
        except PromptOpsError as exc:
            return describe_error(exc)
        return (f"Approved **{prompt} v{version.number}** (tag `{version.tag}`)." if created
                else f"{prompt} v{version.number} was already approved.")

    def on_promote(current: Base, chosen: str | None, request: gr.Request) -> str:
        service = get()
        if not current:
            return "Save or open a version first: only committed versions can take a label."
        prompt, number, wanted = current["name"], current["number"], (chosen or "").strip()
        if not wanted:
            return "Pick or type a label (e.g. production or staging)."
        try:
            user = acting(auth, service.settings, request, "deployer", "move labels")
            if service.store.labels().target(prompt, wanted) == number:  # the core would commit an empty move
                return f"{prompt}: {wanted} already points to v{number}."
            change = service.store.promote(f"{prompt}@{number}", wanted, commit=True, author=user.identity)
        except PromptOpsError as exc:
            return describe_error(exc)
        return f"{change.describe()}" + (f" (commit `{change.commit[:7]}`)." if change.commit else ".")

    existing.input(on_open, existing, [name, editor, base, state, result])
    new.click(on_new, name, [editor, base, state, result])
    # Validation as you type: Gradio 6.31 has no debounce; `always_last` drops the keystrokes typed while a
    # check runs and checks only the newest text. `.change` (not `.input`) also checks a version just opened.
    editor.change(validation_report, [name, editor], report, trigger_mode="always_last", show_progress="hidden")
    name.input(validation_report, [name, editor], report, trigger_mode="always_last", show_progress="hidden")
    save.click(on_save, [name, editor, base, message], [base, result, existing]).then(
        editing_label, [name, base], state)
    approve.click(on_approve, [name, base], result)
    promote.click(on_promote, [base, label], result)

    def on_load() -> Any:
        return gr.update(choices=prompt_names(get()), value=None)

    return {"load": (on_load, [existing])}
