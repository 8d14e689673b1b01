"""The whole UI: who is signed in, then the tabs in one Blocks, filled on page load from the store."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from gateway.auth import Auth, ui_caller
from gateway.settings import GatewaySettings
from gateway.ui.chat import build_chat
from gateway.ui.common import GetService
from gateway.ui.compare import COMPARE_TAB, build_compare, wants_compare
from gateway.ui.editor import build_editor
from gateway.ui.tests_tab import build_tests
from gateway.ui.viewer import build_viewer

SIGNED_OUT = ("Not signed in: chatting and reading work; to save, approve, promote or run tests, open the sign-in "
              "link <code>promptops serve</code> printed (or <a href=\"/signin\">sign in with a token</a>).")


def who(auth: Auth, request: gr.Request) -> str:
    """HTML: the person this browser is signed in as, their roles and a sign-out button; or how to sign in."""
    user = ui_caller(auth, request)
    if user is None:
        return SIGNED_OUT
    roles = ", ".join(sorted(user.roles)) or "no roles"
    return (f"Signed in as <strong>{html.escape(user.name)}</strong> &lt;{html.escape(user.email)}&gt; "
            f"({html.escape(roles)}) <form method=\"post\" action=\"/signout\" style=\"display:inline\">"
            "<button type=\"submit\" id=\"signout\">Sign out</button></form>")


def build(get: GetService, settings: GatewaySettings, auth: Auth) -> gr.Blocks:
    """Chat, Compare, Prompt Viewer, Prompt Editor and Tests. `get()` returns the app's Service (opened by the
    lifespan); `auth` tells who the browser's session cookie belongs to."""
    with gr.Blocks(title="promptops", analytics_enabled=False) as blocks:
        gr.Markdown("# promptops\nPrompts as code: versioned in git, approved by tag, served by Triton.")
        # Markdown, not gr.HTML: Gradio 6 compiles gr.HTML templates with `new Function`, which the CSP forbids.
        signed_in = gr.Markdown(elem_id="signed-in", sanitize_html=False)
        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat"):
                chat = build_chat(get, auth)
            with gr.Tab("Compare", id=COMPARE_TAB):
                compare = build_compare(get, auth)
            with gr.Tab("Prompt Viewer", id="viewer"):
                viewer = build_viewer(get)
            with gr.Tab("Prompt Editor", id="editor"):
                editor = build_editor(get, settings, auth)
            with gr.Tab("Tests", id="tests"):
                tests = build_tests(get, settings, auth)

        def on_load(request: gr.Request) -> str:
            return who(auth, request)

        def open_tab(request: gr.Request) -> Any:
            """`/?a=support@2&b=support@3` opens the Compare tab (its own load event fills both sides)."""
            return gr.Tabs(selected=COMPARE_TAB) if wants_compare(request) else gr.update()

        blocks.load(on_load, None, signed_in)
        blocks.load(open_tab, None, tabs)
        for part in (chat, compare, viewer, editor, tests):
            fn, outputs = part["load"]
            blocks.load(fn, None, outputs)
    return blocks
