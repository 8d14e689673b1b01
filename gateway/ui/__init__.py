"""The Gradio UI (Chat, Prompt Viewer, Prompt Editor), mounted at `/` of the gateway app.

It calls the core through the app's Service (no HTTP to itself). Gradio's analytics are
switched off before gradio is imported: the UI makes no outside requests.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gateway.settings import GatewaySettings


def mount_ui(app: FastAPI, settings: GatewaySettings) -> None:
    """Build the Blocks and mount them at `/` (server-side rendering off: no Node process)."""
    import gradio as gr

    from gateway.ui.blocks import build

    blocks = build(lambda: app.state.service, settings, app.state.auth)
    gr.mount_gradio_app(app, blocks, path="/", ssr_mode=False, show_error=True, footer_links=["api"])
