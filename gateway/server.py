"""Run the gateway app under uvicorn: in the foreground (`promptops serve`) or in a background thread."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

import uvicorn


def config(app: Any, host: str = "127.0.0.1", port: int = 7070, **options: Any) -> uvicorn.Config:
    """uvicorn settings for the gateway: uvloop/httptools when installed, no access log (metrics count requests)."""
    return uvicorn.Config(app, host=host, port=port, access_log=False, log_level=options.pop("log_level", "warning"),
                          loop="auto", http="auto", timeout_graceful_shutdown=5, **options)


class ServerThread:
    """`with ServerThread(app) as url:` serves `app` on a free loopback port until the block ends."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 60.0) -> None:
        self.server = uvicorn.Server(config(app, host, port))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
        self.timeout_s = timeout_s
        self.thread = threading.Thread(target=self.server.run, name="gateway-server", daemon=True)

    @property
    def url(self) -> str:
        """`http://host:port` of the running server."""
        sockets = [s for server in self.server.servers for s in server.sockets]
        host, port = sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start (see the log above)")
            time.sleep(0.02)
        return self.url

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
