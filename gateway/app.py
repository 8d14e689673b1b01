"""The app factory: `create_app(settings)` builds the FastAPI app (API + metrics + Gradio UI).

Nothing is opened at import time. The lifespan opens ONE prompt store and ONE
Triton client for the app (and, in the production topology, the read-only clone
and its refresh task), and closes them at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import errors, tracing
from gateway.auth import Auth, Guard
from gateway.auth import router as auth_router
from gateway.drain import Drain
from gateway.metrics import Metrics
from gateway.routes import chat, feedback, health, metrics, openai, prompts, seed
from gateway.routes import store as store_routes  # `store` is the PromptStore in lifespan
from gateway.routes.embeddings import router as embeddings_router
from gateway.serving import Service
from gateway.settings import GatewaySettings, get_settings
from promptops.errors import PromptOpsError
from promptops.store import PromptStore, open_store, remote
from promptops.triton.client import InferenceClient
from promptops.triton.launcher import local_grpc_url

if TYPE_CHECKING:
    from promptops.capture import Capture
    from promptops.state import StateStore

log = logging.getLogger("gateway")


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, by Content-Length or while reading chunked bodies.

    A plain ASGI middleware (not BaseHTTPMiddleware): it must not slow the streaming hot path.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        for key, value in scope["headers"]:
            if key == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    return await errors.error_response(self._error())(scope, receive, send)
                break
        seen, refused = 0, False

        async def limited() -> Message:
            # Chunked bodies have no Content-Length: count while the app reads, answer 413 ourselves
            # (FastAPI would turn an exception here into a 400) and tell the app the client left.
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes and not refused:
                refused = True
                await errors.error_response(self._error())(scope, receive, send)
            return {"type": "http.disconnect"} if refused else message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited, guarded)

    def _error(self) -> errors.PayloadTooLarge:
        return errors.PayloadTooLarge(f"request body is larger than {self.max_bytes:,} bytes",
                                      fix="send a smaller request (limit: PROMPTOPS_MAX_BODY_BYTES)")


def open_gateway_store(settings: GatewaySettings) -> PromptStore:
    """The store the gateway serves: the repository itself, or a read-only clone of `store_url`.

    The clone is this process's own (PROMPTOPS_CLONE_DIR, else the first clone of the store under
    ~/.cache/promptops/clones that no other live process holds: promptops/store/remote.py), so replicas
    on one host never share one. A store that cannot be cloned or fetched, or has no branch `store_ref`,
    raises a StoreError with the fix (`promptops serve` prints it as one line, before uvicorn starts)."""
    if settings.store_url is None:
        return open_store(settings.core())
    dest = settings.clone_dir or remote.lease_clone_dir(settings.store_url,
                                                        Path.home() / ".cache" / "promptops" / "clones")
    remote.clone(settings.store_url, dest, settings.store_ref)
    return PromptStore(dest, settings.prompts_dir, remote.serving_branch(settings.store_ref))


async def refresh_loop(app: FastAPI, settings: GatewaySettings) -> None:
    """Fetch the clone every `refresh_s`: new commits, approvals and label moves are served without a restart
    (a push webhook on POST /v1/store/refresh makes it immediate)."""
    service: Service = app.state.service
    while True:
        await asyncio.sleep(settings.refresh_s)
        try:
            await service.refresh()
        except PromptOpsError as exc:  # keep serving what we have; say why in the log and /v1/store
            log.warning("store refresh failed: %s", exc.message)
        except Exception:  # anything else too: one failed fetch must never end the loop
            log.exception("store refresh failed")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the store and the Triton client; start the refresh task; take over SIGTERM to drain (gateway/drain.py);
    close everything at shutdown."""
    settings: GatewaySettings = app.state.settings
    store = await asyncio.to_thread(open_gateway_store, settings)
    store.lock_timeout_s = settings.lock_timeout_s  # a write waits this long for the lock, then 503
    # triton_url's one default (promptops.config.settings.Settings): None is the local server.
    client = InferenceClient(settings.triton_url or local_grpc_url(), settings.request_timeout_s)
    service = app.state.service = Service(settings, store, client, app.state.metrics)
    await asyncio.to_thread(service.live.build)  # the first catalog (the newest commit that validates)
    service.state = await asyncio.to_thread(open_state, settings)  # migrations run here, off the loop
    service.capture = open_capture(settings)
    task = None
    if settings.store_url is not None and settings.refresh_s > 0:
        task = asyncio.create_task(refresh_loop(app, settings), name="promptops-store-refresh")
    # SIGTERM drains (gateway/drain.py): readyz and new generations 503 at once, uvicorn stops after the delay.
    drain = app.state.drain = Drain(service.begin_drain, settings.drain_delay_s, settings.drain_grace_s)
    drain.install()
    try:
        yield
    finally:
        drain.uninstall()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await client.close()
        for closing in (service.state, service.capture):
            if closing is not None:
                await asyncio.to_thread(closing.close)  # flushes what is queued
        service.state_pool.shutdown(wait=False)


def open_state(settings: GatewaySettings) -> StateStore | None:
    """The request records and feedback store (promptops/state), or None with PROMPTOPS_STATE_URL=off."""
    if settings.state_url == "off":
        return None
    from promptops.state import StateStore

    return StateStore.open(settings.state_url, settings.repo)


def open_capture(settings: GatewaySettings) -> Capture | None:
    """The capture of served inputs for replay (promptops/capture.py), or None when it is off."""
    from promptops.capture import Capture, CaptureSettings

    capture = CaptureSettings.from_env(settings.repo)
    return Capture(capture) if capture.on else None


def create_app(settings: GatewaySettings | None = None, *, ui: bool | None = None) -> FastAPI:
    """A new gateway app for `settings` (default: from the environment). `ui=False` leaves the Gradio UI out."""
    settings = settings or get_settings()
    app = FastAPI(title="promptops gateway", version="0.1.0", lifespan=lifespan,
                  description="Prompts as code, served: versioned prompts from git, answered by Triton + vLLM.")
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.auth = Auth(settings)
    # Error bodies and public answers never show where the repository or the clone lives, nor URL credentials.
    app.state.redact = errors.redactor([(settings.repo, "<repo>"), (settings.clone_dir, "<clone>"),
                                        (settings.store_url, "<store>"), (Path.home(), "~")])
    # Routes read per-request policy through the get_settings dependency: tests override it.
    app.dependency_overrides[get_settings] = lambda: settings
    errors.install(app, app.state.redact)
    # Generation routes first: Starlette matches routes in order, and these are the hot path.
    for router in (chat.router, openai.router, seed.router, health.router, prompts.router, store_routes.router,
                   metrics.router, feedback.router, auth_router):
        app.include_router(router)
    app.include_router(embeddings_router)  # POST /v1/embeddings (an embedding model on Triton)

    mounted = settings.ui if ui is None else ui
    if mounted:
        from gateway.ui import mount_ui

        mount_ui(app, settings)
    if settings.cors_origin_list or mounted:
        # Declared even with no origins: Gradio then adds none of its own (it answers localhost origins
        # with credentials otherwise). No CORS headers at all unless PROMPTOPS_CORS_ORIGINS names some.
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT"], allow_headers=["authorization", "content-type"])
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # OpenTelemetry traces of generation requests, only when OTEL_EXPORTER_OTLP_ENDPOINT is set (gateway/tracing.py).
    tracing.install(app)
    # Outermost: a foreign Host or a cross-site write is refused before anything else runs (docs/security.md).
    app.add_middleware(Guard, settings=settings, auth=app.state.auth, redact=app.state.redact)
    return app
