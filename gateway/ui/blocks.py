"""The whole UI: three tabs in one Blocks, filled on page load from the store."""

from __future__ import annotations

import gradio as gr

from gateway.settings import GatewaySettings
from gateway.ui.chat import build_chat
from gateway.ui.common import GetService
from gateway.ui.editor import build_editor
from gateway.ui.viewer import build_viewer


def build(get: GetService, settings: GatewaySettings) -> gr.Blocks:
    """Chat, Prompt Viewer and Prompt Editor. `get()` returns the app's Service (opened by the lifespan)."""
    with gr.Blocks(title="promptops", analytics_enabled=False) as blocks:
        gr.Markdown("# promptops\nPrompts as code: versioned in git, approved by tag, served by Triton.")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat = build_chat(get)
            with gr.Tab("Prompt Viewer", id="viewer"):
                viewer = build_viewer(get)
            with gr.Tab("Prompt Editor", id="editor"):
                editor = build_editor(get, settings)
        for part in (chat, viewer, editor):
            fn, outputs = part["load"]
            blocks.load(fn, None, outputs)
    return blocks
