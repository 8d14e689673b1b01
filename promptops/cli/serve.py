"""`promptops serve`: the embedded Triton (unless --triton-url), then the gateway and UI under uvicorn.

Stopping: Ctrl-C (SIGINT), SIGTERM and SIGHUP all stop `serve`: uvicorn shuts the gateway down
(streams in flight get PROMPTOPS_DRAIN_GRACE to finish), then the Triton this `serve` started is
stopped and waited for (a Triton it merely reused is left running). A signal that arrives while
Triton is still starting stops it as well. SIGTERM to a serving gateway drains first
(gateway/drain.py: /readyz and new generations 503 at once, the port stays open PROMPTOPS_DRAIN_DELAY)
and exits 0; otherwise the exit status is 128 + the signal's number (130 for Ctrl-C, 129 for SIGHUP,
143 for a SIGTERM before the gateway serves).

Signing in: `serve` creates (once) or reads the local owner's token (0600, ~/.config/promptops/local-token;
the owner is in the users file with every role, named after the repository's git identity) and prints a
sign-in link like Jupyter's. The browser that opens it gets a session cookie; what it saves, approves
and promotes is recorded as that person.

After a SIGKILL nothing can clean up: the embedded Triton keeps running. Its PID file names this
`serve` as the owner, so the next `serve` sees an orphan and replaces it (see `_start_triton`).

The other way round, when the embedded Triton dies (a crash, a SIGKILL), a watcher thread notices
within a second: it kills the rest of Triton's process group (its Python backend stubs, which would
otherwise live on, ~1.3 GB with vLLM), reaps it and them (this `serve` adopts orphans of its
descendants, see `triton.become_subreaper`), removes its shared memory and records how it ended for
`promptops triton status`. The gateway stays up and answers 503 until `serve` is restarted.

Ports: the embedded Triton's default ports (8000-8002) move to free ones when taken; a port set on
purpose (--triton-*-port, PROMPTOPS_TRITON_*_PORT, the gateway's --port / PROMPTOPS_PORT) must be
free, and the error names the setting to change.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from promptops.cli.boundary import EXIT_OK, boundary
from promptops.cli.output import echo
from promptops.errors import PromptOpsError

if TYPE_CHECKING:  # imported when used: `promptops --help` must not pay for the launcher
    from promptops.triton.launcher import TritonExit, TritonServer

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The flag of `serve` that sets each port of the embedded Triton (named in port errors).
TRITON_PORT_FLAGS = {"http_port": "--triton-http-port", "grpc_port": "--triton-grpc-port",
                     "metrics_port": "--triton-metrics-port"}
WATCH_INTERVAL_S = 0.5  # how soon a dead Triton's stubs are killed; each look is one /proc scan (~ms)


class Stopped(Exception):
    """A stop signal arrived; raised only at safe points (never in the middle of a start or a stop)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """While active, SIGINT, SIGTERM and SIGHUP only record that a stop was asked for.

    `check()` raises :class:`Stopped` at safe points (it is the `on_tick` of Triton's startup);
    while uvicorn runs (`server` set) the signal is passed to it, so SIGHUP stops the gateway
    exactly as uvicorn's own SIGINT/SIGTERM handling does. Nothing is ever interrupted halfway,
    so the Triton being started or stopped is never left behind.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.server: Any = None  # the running uvicorn.Server
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = self.signum or signum
        if self.server is not None:
            self.server.handle_exit(signum, frame)

    def check(self, _elapsed: float = 0.0) -> None:
        """Raise :class:`Stopped` when a stop signal has arrived."""
        if self.signum is not None:
            raise Stopped(self.signum)


class TritonWatch:
    """A daemon thread that cleans up after the Triton this `serve` started as soon as it dies.

    `TritonServer.check_exit` does the work (stubs killed, zombie reaped, shared memory removed,
    exit recorded); this only polls it and says what happened. `ended` is set once it has.
    """

    def __init__(self, server: TritonServer) -> None:
        self.server = server
        self.ended: TritonExit | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="triton-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(WATCH_INTERVAL_S):
            ended = self.server.check_exit()
            if ended is not None:
                self.ended = ended
                echo(f"Triton (pid {ended.pid}) {ended}. The gateway answers 503 until `promptops serve` "
                     f"is restarted; see `promptops triton logs`.", err=True)
                return

    def close(self) -> None:
        """Stop watching (before `serve` stops Triton itself)."""
        self._done.set()
        self._thread.join(timeout=10)


def _gateway_port_taken(host: str, port: int) -> PromptOpsError:
    return PromptOpsError(f"port {port} on {host} is already in use (the gateway's port)",
                          fix="stop whatever listens there, or set --port (or PROMPTOPS_PORT) to a free port")


def _start_triton(config: Any, stop: StopSignals) -> tuple[TritonServer | None, str]:
    """Make the embedded Triton ready: its gRPC address, and its TritonServer when this `serve` started it
    (and so must stop it), else None.

    A ready Triton that nobody owns (`promptops triton up`) or that another live `serve` owns is
    reused and left running at exit. A Triton whose owner has died (a `serve` killed by SIGKILL)
    is an orphan and is *replaced*, never reused: its owner died abnormally, so its state and the
    models, ports and code it was started with are unknown, and a `serve` that only ever stops the
    Triton it started itself is simpler to reason about; the cost is one cold start (~3 s with a
    small model, ~25 s with vLLM).
    """
    from promptops.triton import launcher as triton

    current = triton.status(config)
    if current.orphaned:
        echo(f"Stopping the Triton (pid {current.pid}) left running by a killed `promptops serve` "
             f"(pid {current.owner})...", err=True)
        triton.down(config)
    elif current.ready:
        echo(f"Using the running Triton (pid {current.pid}) at {current.grpc_url}", err=True)
        return None, current.grpc_url
    stop.check()
    echo("Starting Triton and loading models (the first start takes ~30 s)...", err=True)
    # Before the start: Triton's stubs are re-parented when it dies, and must come to us to be reaped.
    triton.become_subreaper()
    server = triton.TritonServer(config)
    server.up(on_tick=stop.check, owner=os.getpid())
    return server, config.grpc_url  # a taken default port was moved: the config says where it went


def _gateway_settings(ctx: typer.Context, **changes: Any) -> Any:
    from gateway.settings import GatewaySettings
    from promptops.cli.context import settings
    from promptops.config.reader import from_env

    core = settings(ctx)
    return from_env(GatewaySettings, repo=core.repo, prompts_dir=core.prompts_dir, **changes)


def _owner(repo: Any) -> tuple[str, str]:
    """The local owner as the repository's git identity knows them; ("owner", "owner@localhost") when it does not."""
    from promptops.errors import PromptOpsError
    from promptops.store.git import Git

    try:
        return Git(repo).identity("signing in")
    except (PromptOpsError, OSError):
        return "owner", "owner@localhost"


def sign_in_link(settings: Any) -> str:
    """`http://127.0.0.1:7070/signin?token=...` for the local owner (their token is created once, then reused)."""
    from gateway.settings import host_name, is_wildcard
    from promptops.config.users import Users, local_token
    from promptops.errors import PromptOpsError

    users = Users(settings.users_file)
    name, email = _owner(settings.repo)
    try:
        token = local_token(users, name, email)
    except PromptOpsError:  # a git identity the users file does not accept (an odd email): the generic owner
        token = local_token(users, "owner", "owner@localhost")
    host = "127.0.0.1" if is_wildcard(settings.host) else host_name(settings.host)
    return f"http://{host}:{settings.port}/signin?token={token}"


def _duration(text: str) -> float:
    from promptops.config.reader import parse_duration

    try:
        return parse_duration(text)
    except ValueError:
        raise typer.BadParameter("use 30, 30s, 5m, 1h or 250ms (0 = never)", param_hint="--refresh") from None


def serve(ctx: typer.Context,
          host: Annotated[str, typer.Option(help="Address to listen on (non-loopback: reads need a token too; set PROMPTOPS_ALLOWED_HOSTS).")] = "127.0.0.1",
          port: Annotated[int, typer.Option(envvar="PROMPTOPS_PORT", min=1, max=65535, help="Port to listen on.")] = 7070,
          triton_url: Annotated[Optional[str], typer.Option("--triton-url", help="Use this Triton (host:port gRPC) instead of starting the embedded one.")] = None,
          triton_http_port: Annotated[Optional[int], typer.Option("--triton-http-port", min=1, max=65535, help="The embedded Triton's HTTP port (default: PROMPTOPS_TRITON_HTTP_PORT, else 8000, else a free one).")] = None,
          triton_grpc_port: Annotated[Optional[int], typer.Option("--triton-grpc-port", min=1, max=65535, help="The embedded Triton's gRPC port (default: PROMPTOPS_TRITON_GRPC_PORT, else 8001, else a free one).")] = None,
          triton_metrics_port: Annotated[Optional[int], typer.Option("--triton-metrics-port", min=1, max=65535, help="The embedded Triton's metrics port (default: PROMPTOPS_TRITON_METRICS_PORT, else 8002, else a free one).")] = None,
          serve_drafts: Annotated[bool, typer.Option("--serve-drafts", help="Serve the newest version (and @draft) for bare names, approved or not.")] = False,
          store: Annotated[Optional[str], typer.Option("--store", help="Serve from a read-only clone of this path or git URL.")] = None,
          ref: Annotated[str, typer.Option("--ref", help="Branch of --store to serve.")] = "main",
          refresh: Annotated[str, typer.Option("--refresh", help="Fetch --store this often (30s, 5m; 0 = never).")] = "30s",
          ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Mount the Gradio UI at /.")] = True) -> int:
    """Serve prompts: Triton + the HTTP/OpenAI gateway + the UI on http://127.0.0.1:7070."""
    from gateway.settings import is_loopback
    from promptops.cli.context import settings as core_settings
    from promptops.cli.triton import triton_config
    from promptops.triton import launcher as triton

    url = triton_url or core_settings(ctx).triton_url
    if triton.port_in_use(host, port):  # before Triton's start (~30 s), not after it
        raise _gateway_port_taken(host, port)
    watch = None
    with StopSignals() as stop:
        try:
            if url is None:
                config = triton_config(ctx, {"http_port": triton_http_port, "grpc_port": triton_grpc_port,
                                             "metrics_port": triton_metrics_port}, TRITON_PORT_FLAGS)
                started, url = _start_triton(config, stop)
                watch = TritonWatch(started) if started is not None else None
            settings = _gateway_settings(ctx, host=host, port=port, triton_url=url, serve_drafts=serve_drafts,
                                         store_url=store, store_ref=ref, refresh_s=_duration(refresh), ui=ui)
            if not is_loopback(host):
                hosts = ", ".join(sorted(settings.host_allow_list or ["any"]))
                who = "every request needs" if settings.reads_need_credential else "writes need"
                echo(f"Listening on {host}: {who} a token or the sign-in below, and the Host a request names "
                     f"must be one of: {hosts} (PROMPTOPS_ALLOWED_HOSTS).", err=True)
            echo(f"Sign in (saves, approvals and label moves are recorded as you): {sign_in_link(settings)}",
                 err=True)
            run(settings, stop)
            stop.check()
        except Stopped as stopped:
            echo(f"{stopped}: stopping.", err=True)
            return 128 + stopped.signum
        finally:
            if watch is not None:
                watch.close()
                if watch.ended is None:  # a Triton that died was cleaned up by the watch
                    echo("Stopping Triton...", err=True)
                    watch.server.stop()
    return EXIT_OK


def run(settings: Any, stop: StopSignals | None = None) -> None:
    """Serve until a stop signal (uvicorn shuts the app down cleanly: the lifespan closes the clients).

    With `stop`, the signals it records (SIGHUP too) stop uvicorn, including one that arrived before.
    """
    import uvicorn

    from gateway.app import create_app
    from gateway.server import config

    if settings.store_url is not None:
        from gateway.app import open_gateway_store

        # Clone (or fetch) --store before uvicorn: a bad URL, an unreachable store or a wrong --ref is then
        # one line with its fix (the boundary's), not a traceback from the app's startup. The lifespan reuses it.
        open_gateway_store(settings)
    echo(f"promptops gateway on http://{settings.host}:{settings.port}  (UI /, API /docs, metrics /metrics)",
         err=True)
    server = uvicorn.Server(config(create_app(settings), settings.host, settings.port, log_level="info"))
    # Any stop lets streams in flight finish for up to the drain grace (SIGTERM: counted from the signal).
    server.config.timeout_graceful_shutdown = settings.drain_grace_s
    if stop is None:
        server.run()
        return
    stop.server = server
    server.should_exit = stop.signum is not None  # a signal before this point is not lost
    try:
        server.run()
    except SystemExit:
        from promptops.triton.launcher import port_in_use

        # uvicorn exits when it cannot bind: the port was taken after the check in `serve`.
        if not server.started and port_in_use(settings.host, settings.port):
            raise _gateway_port_taken(settings.host, settings.port) from None
        raise
    finally:
        stop.server = None


def register(app: typer.Typer) -> None:
    """Attach `serve`."""
    app.command("serve")(boundary(serve))


__all__ = ["register", "serve"]
