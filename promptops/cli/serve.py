"""`promptops serve`: the embedded Triton (unless --triton-url), then the gateway and UI under uvicorn."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from promptops.cli.boundary import EXIT_OK, boundary
from promptops.cli.output import echo


def _gateway_settings(ctx: typer.Context, **changes: Any) -> Any:
    from gateway.settings import GatewaySettings
    from promptops.cli.app import settings

    core = settings(ctx)
    return GatewaySettings(repo=core.repo, prompts_dir=core.prompts_dir, branch=core.branch,
                           default_model=core.default_model).with_(**changes)


def serve(ctx: typer.Context,
          host: Annotated[str, typer.Option(help="Address to listen on (non-loopback: writes need PROMPTOPS_ADMIN_TOKEN).")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 7070,
          triton_url: Annotated[Optional[str], typer.Option("--triton-url", help="Use this Triton (host:port gRPC) instead of starting the embedded one.")] = None,
          serve_drafts: Annotated[bool, typer.Option("--serve-drafts", help="Serve the newest version (and @draft) for bare names, approved or not.")] = False,
          store: Annotated[Optional[str], typer.Option("--store", help="Serve from a read-only clone of this path or git URL.")] = None,
          ref: Annotated[str, typer.Option("--ref", help="Branch of --store to serve.")] = "main",
          refresh: Annotated[str, typer.Option("--refresh", help="Fetch --store this often (30s, 5m; 0 = never).")] = "30s",
          ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Mount the Gradio UI at /.")] = True) -> int:
    """Serve prompts: Triton + the HTTP/OpenAI gateway + the UI on http://127.0.0.1:7070."""
    from gateway.settings import is_loopback, parse_duration
    from promptops import triton
    from promptops.cli.app import settings as core_settings

    url = triton_url or core_settings(ctx).triton_url
    started = None
    if url is None:
        config = triton.TritonConfig()
        current = triton.status(config)
        if current.ready:
            echo(f"Using the running Triton (pid {current.pid}) at {config.grpc_url}", err=True)
        else:
            echo("Starting Triton and loading models (the first start takes ~30 s)...", err=True)
            triton.up(config)
            started = config
        url = config.grpc_url
    try:
        settings = _gateway_settings(ctx, host=host, port=port, triton_url=url, serve_drafts=serve_drafts,
                                     store_url=store, store_ref=ref, refresh_s=parse_duration(refresh), ui=ui)
        if not is_loopback(host) and settings.admin_token is None:
            echo(f"Listening on {host}: saving and approving are disabled until PROMPTOPS_ADMIN_TOKEN is set.",
                 err=True)
        run(settings)
    finally:
        if started is not None:
            echo("Stopping Triton...", err=True)
            triton.down(started)
    return EXIT_OK


def run(settings: Any) -> None:
    """Serve until Ctrl-C or SIGTERM (uvicorn shuts the app down cleanly: the lifespan closes the clients)."""
    import uvicorn

    from gateway.app import create_app
    from gateway.server import config

    echo(f"promptops gateway on http://{settings.host}:{settings.port}  (UI /, API /docs, metrics /metrics)",
         err=True)
    uvicorn.Server(config(create_app(settings), settings.host, settings.port, log_level="info")).run()


def register(app: typer.Typer) -> None:
    """Attach `serve`."""
    app.command("serve")(boundary(serve))


__all__ = ["register", "serve"]
