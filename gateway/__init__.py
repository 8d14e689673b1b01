"""The promptops gateway: FastAPI (HTTP API, OpenAI-compatible API, metrics) and the Gradio UI.

Everything web-related lives here; the core (`promptops/`) never imports a web framework.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    # Lazy: `import gateway.settings` must not pay for FastAPI and Gradio.
    if name == "create_app":
        from gateway.app import create_app

        return create_app
    raise AttributeError(name)
