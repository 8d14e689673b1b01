"""Draining on SIGTERM: a replica leaves its load balancer without cutting a stream or losing a request.

On SIGTERM the gateway
1. at once: `/readyz` answers 503 (`"status": "draining"`) and every new generation 503 `draining` with
   `Retry-After` (`Service.begin_drain`; those waiting in the Gate's line too);
2. keeps its port open for `drain_delay_s` (PROMPTOPS_DRAIN_DELAY), so the load balancer, which probes
   `/readyz`, stops sending and stray requests get a fast, retryable 503 rather than a refused connection;
3. then stops uvicorn (no new connections; idle keep-alive ones are closed) and lets the streams in
   flight finish until `drain_grace_s` (PROMPTOPS_DRAIN_GRACE) after the signal: uvicorn's
   `timeout_graceful_shutdown` is set to what is left of it; past it, they are cancelled;
4. the lifespan then stops the store refresh and closes the Triton client, and the process exits 0.

A second SIGTERM skips the rest of the delay. SIGINT (Ctrl-C) and SIGHUP keep uvicorn's own meaning
(stop now, streams get the grace; a second Ctrl-C stops at once).

How: uvicorn (>= 0.29) installs `Server.handle_exit` as the SIGINT/SIGTERM handler while it serves.
The lifespan (gateway/app.py) calls :meth:`Drain.install`, which replaces the SIGTERM handler with its own
when it finds uvicorn's there (the main thread only), and puts uvicorn's back at shutdown. Because it
sets `server.should_exit` itself instead of passing the signal on, uvicorn does not re-raise SIGTERM at
exit: `uvicorn --factory gateway.app:create_app` drains and exits 0 just as `promptops serve` does.
Anything else (a test's server thread, TestClient, another ASGI server) keeps its own handling.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

log = logging.getLogger("gateway")


def uvicorn_server() -> Any:
    """The uvicorn.Server whose `handle_exit` is the SIGTERM handler now (it is while it serves), else None."""
    try:
        import uvicorn
    except ImportError:  # pragma: no cover
        return None
    owner = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return owner if isinstance(owner, uvicorn.Server) else None


class Drain:
    """SIGTERM -> `begin()` now, uvicorn's stop after `delay_s`, streams until `grace_s` after the signal."""

    def __init__(self, on_drain: Any, delay_s: float, grace_s: float) -> None:
        self.on_drain = on_drain  # called once, on the event loop (Service.begin_drain)
        self.delay_s = max(0.0, delay_s)
        self.grace_s = max(0.0, grace_s)
        self.started: float | None = None  # time.monotonic() of the first SIGTERM
        self.server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: Any = None
        self._task: asyncio.Task[None] | None = None

    def install(self) -> bool:
        """Take over SIGTERM from the uvicorn server running this app (see the module doc); False when there
        is none (not the main thread, not uvicorn)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        server = uvicorn_server()
        if server is None:
            return False
        self.server, self._loop = server, asyncio.get_running_loop()
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return True

    def uninstall(self) -> None:
        """Give SIGTERM back to uvicorn (at shutdown; it restores the process's own handler after that)."""
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # A signal handler: it runs between two bytecodes of the loop's thread, so it only schedules.
        assert self._loop is not None
        if self.started is None:
            self.started = time.monotonic()
            self._loop.call_soon_threadsafe(self._begin)
        else:  # a second SIGTERM: stop waiting for the load balancer
            self._loop.call_soon_threadsafe(self._stop)

    def _begin(self) -> None:
        log.warning("SIGTERM: draining (readyz 503, new generations 503); stopping in %g s, streams get %g s",
                    self.delay_s, self.grace_s)
        self.on_drain()
        self._task = asyncio.get_running_loop().create_task(self._after_delay(), name="promptops-drain")

    async def _after_delay(self) -> None:
        await asyncio.sleep(self.delay_s)
        self._stop()

    def _stop(self) -> None:
        assert self.started is not None and self.server is not None
        left = self.grace_s - (time.monotonic() - self.started)
        # What is left of the grace once uvicorn stops listening; at least a moment for answers being written.
        self.server.config.timeout_graceful_shutdown = max(1.0, left)
        self.server.should_exit = True
