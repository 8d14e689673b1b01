"""`promptops triton up|down|status|logs`: the local Triton server; `triton_config` and `grpc_url` for every
command that talks to a model (test, chat, review, serve)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from promptops.cli.boundary import EXIT_OK, EXIT_USER_ERROR, boundary
from promptops.cli.context import settings
from promptops.cli.output import echo, is_tty, print_json
from promptops.errors import PromptOpsError

triton_app = typer.Typer(help="Run the local Triton server (real tritonserver + the vLLM backend on CPU).",
                         no_args_is_help=True, rich_markup_mode=None)


def triton_config(ctx: typer.Context, ports: dict[str, int | None] | None = None,
                  port_flags: dict[str, str] | None = None, **overrides: Any) -> Any:
    """The local server's configuration (ports, runtime folder) for this repository.

    `ports` given as flags (not None) are fixed, like those set by their variables: a taken one is an
    error naming `port_flags` (the command's flag per port field); the defaults move when taken.
    """
    from promptops.triton.launcher import TritonConfig

    given = {name: port for name, port in (ports or {}).items() if port is not None}
    config = TritonConfig(**given, **{k: v for k, v in overrides.items() if v is not None},
                          port_flags=dict(port_flags or {}))
    config.fixed_ports = config.fixed_ports | set(given)
    return config


def grpc_url(ctx: typer.Context) -> str:
    """`--triton-url` when given, else the local server's gRPC address (where it runs: a default port may have moved)."""
    from promptops.triton.launcher import local_grpc_url

    return settings(ctx).triton_url or local_grpc_url(triton_config(ctx))


def _spinner(message: str) -> Any:
    """A callback that keeps a spinner turning on a TTY (and stays silent when piped)."""
    if not is_tty(sys.stderr):
        return None, None
    from rich.console import Console

    status = Console(stderr=True).status(message)
    status.start()
    return status, lambda elapsed: status.update(f"{message} ({elapsed:.0f}s)")


def up(ctx: typer.Context,
       models: Annotated[Optional[list[str]], typer.Option("--model", help="Model to load (repeatable; default: the CPU models).")] = None,
       repository: Annotated[Optional[list[Path]], typer.Option("--model-repository", help="Extra model repository (repeatable).")] = None,
       http_port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="HTTP port (default: PROMPTOPS_TRITON_HTTP_PORT, else 8000, else a free one).")] = None,
       grpc_port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="gRPC port (default: PROMPTOPS_TRITON_GRPC_PORT, else 8001, else a free one).")] = None,
       metrics_port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="Metrics port (default: PROMPTOPS_TRITON_METRICS_PORT, else 8002, else a free one).")] = None,
       timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 300.0) -> int:
    """Start the local Triton server and wait until its models are ready."""
    from promptops.triton import launcher as triton

    ports = {"http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port}
    config = triton_config(ctx, ports, {name: f"--{name.replace('_', '-')}" for name in ports},
                           models=models or None)
    if repository:
        config.model_repositories += [p.resolve() for p in repository]
    current = triton.status(config)
    if current.ready:
        echo(f"Triton is already running (pid {current.pid}) at {current.grpc_url}")
        return EXIT_OK
    spinner, tick = _spinner("Starting Triton and loading models")
    try:
        state = triton.up(config, timeout=timeout, on_tick=tick)
    finally:
        if spinner:
            spinner.stop()
    echo(f"Triton is ready (pid {state.pid}): gRPC {state.grpc_url}, HTTP {state.http_url}")
    echo(f"Models: {', '.join(f'{m.name} ({m.state})' for m in state.models) or 'none'}")
    return EXIT_OK


def down(ctx: typer.Context) -> int:
    """Stop the local Triton server."""
    from promptops.triton import launcher as triton

    echo("Triton stopped." if triton.down(triton_config(ctx)) else "Triton was not running.")
    return EXIT_OK


def status(ctx: typer.Context, format_: Annotated[str, typer.Option("--format", help="text or json.")] = "text") -> int:
    """Show whether the local Triton server is running and which models are ready."""
    import time

    from promptops.triton import launcher as triton

    state = triton.status(triton_config(ctx))
    ended = state.exit  # how the PID file's server ended, when it died on its own
    if format_ == "json":
        print_json({"running": state.running, "ready": state.ready, "pid": state.pid, "grpc_url": state.grpc_url,
                    "models": [m.__dict__ for m in state.models],
                    "exited": None if ended is None else {"pid": ended.pid, "how": ended.how,
                                                          "cleaned": ended.cleaned, "at": ended.at}})
    elif ended is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ended.at))
        echo(f"exited (pid {ended.pid}, {when}): {ended}. Its log: promptops triton logs")
    else:
        echo(f"{'ready' if state.ready else 'running' if state.running else 'stopped'}"
             f"{f' (pid {state.pid})' if state.pid else ''}: gRPC {state.grpc_url}")
        for model in state.models:
            echo(f"  {model.name} v{model.version}: {model.state} {model.reason}".rstrip())
    return EXIT_OK if state.ready else EXIT_USER_ERROR


def logs(ctx: typer.Context, lines: Annotated[int, typer.Option("-n", "--lines", help="Lines from the end.")] = 50) -> int:
    """Print the end of the local Triton server's log."""
    path = triton_config(ctx).log_path
    if not path.exists():
        raise PromptOpsError(f"no Triton log at {path}", fix="start the server with `promptops triton up`")
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        tail = handle.readlines()[-lines:]
    typer.echo("".join(tail), nl=False)
    return EXIT_OK


def register(app: typer.Typer) -> None:
    """Attach `triton up|down|status|logs`."""
    triton_app.command("up")(boundary(up))
    triton_app.command("down")(boundary(down))
    triton_app.command("status")(boundary(status))
    triton_app.command("logs")(boundary(logs))
    app.add_typer(triton_app, name="triton")


__all__ = ["register", "grpc_url", "triton_config"]
