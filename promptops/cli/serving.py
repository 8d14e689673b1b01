"""Model-facing commands: triton up/down/status/logs, test, chat."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from promptops.cli.boundary import EXIT_OK, EXIT_USER_ERROR, boundary
from promptops.cli.output import echo, is_tty, print_json, table
from promptops.errors import PromptOpsError

triton_app = typer.Typer(help="Run the local Triton server (real tritonserver + the vLLM backend on CPU).",
                         no_args_is_help=True, rich_markup_mode=None)


def _settings(ctx: typer.Context) -> Any:
    from promptops.cli.app import settings

    return settings(ctx)


def triton_config(ctx: typer.Context, **overrides: Any) -> Any:
    """The local server's configuration (ports, runtime folder) for this repository."""
    from promptops.triton import TritonConfig

    return TritonConfig(**{k: v for k, v in overrides.items() if v is not None})


def grpc_url(ctx: typer.Context) -> str:
    """`--triton-url` when given, else the local server's gRPC address."""
    return _settings(ctx).triton_url or triton_config(ctx).grpc_url


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
       http_port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
       grpc_port: Annotated[int, typer.Option(help="gRPC port.")] = 8001,
       metrics_port: Annotated[int, typer.Option(help="Metrics port.")] = 8002,
       timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 300.0) -> int:
    """Start the local Triton server and wait until its models are ready."""
    from promptops import triton

    config = triton_config(ctx, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
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
    from promptops import triton

    echo("Triton stopped." if triton.down(triton_config(ctx)) else "Triton was not running.")
    return EXIT_OK


def status(ctx: typer.Context, format_: Annotated[str, typer.Option("--format", help="text or json.")] = "text") -> int:
    """Show whether the local Triton server is running and which models are ready."""
    from promptops import triton

    state = triton.status(triton_config(ctx))
    if format_ == "json":
        print_json({"running": state.running, "ready": state.ready, "pid": state.pid, "grpc_url": state.grpc_url,
                    "models": [m.__dict__ for m in state.models]})
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


def _targets(ctx: typer.Context, names: list[str], ref: str | None, changed_since: str | None) -> list[Any]:
    from promptops.testing import Target
    from promptops.workspace import Workspace

    s = _settings(ctx)
    ws = Workspace(s.repo, s.prompts_dir)
    if changed_since:
        from promptops.store import open_store

        store = open_store(s)
        changed = {c.name for c in store.changes(changed_since, "HEAD") if c.status != "removed"}
        changed |= {st.name for st in store.status() if st.dirty or st.untracked}
        names = sorted(changed & set(names)) if names else sorted(changed)
    names = names or ws.names()
    if ref is None:
        return [Target(ws.load(n), "draft") for n in names]
    from promptops.store import open_store

    store = open_store(s)
    targets = []
    for name in names:
        resolved = store.resolve(f"{name}@{ref}", default="draft")
        label = f"v{resolved.version.number}" if resolved.version else "draft"
        targets.append(Target(resolved.prompt, label))
    return targets


def test(ctx: typer.Context,
         names: Annotated[Optional[list[str]], typer.Argument(help="Prompts to test (default: all).")] = None,
         ref: Annotated[Optional[str], typer.Option("--ref", help="Test this version of each prompt (N, sha, tag, head, approved).")] = None,
         changed_since: Annotated[Optional[str], typer.Option("--changed-since", help="Only prompts changed since this git ref.")] = None,
         repeat: Annotated[int, typer.Option("--repeat", min=1, help="Run each case N times.")] = 1,
         concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Cases in flight at once.")] = 4,
         junit: Annotated[Optional[Path], typer.Option("--junit", help="Write JUnit XML here.")] = None,
         format_: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
         timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request.")] = 120.0,
         require_tests: Annotated[bool, typer.Option("--require-tests", help="Fail (exit 1, nothing run) when a selected prompt has no test cases.")] = False) -> int:
    """Run the prompts' test cases against the model on Triton."""
    from promptops.inference import InferenceClient, run_sync
    from promptops.testing import junit_xml, run_tests
    from promptops.workspace import atomic_write

    selected = _targets(ctx, list(names or []), ref, changed_since)
    untested = [t.prompt.name for t in selected if not t.prompt.tests]
    if require_tests and untested:
        # CI approves what passes: a prompt without cases would "pass" without anything being checked.
        raise PromptOpsError(f"no test cases in {', '.join(untested)}",
                             fix="add `tests` cases to the prompt file (README: prompt files), or leave it out of this run")
    targets = [t for t in selected if t.prompt.tests]
    total = sum(len(t.prompt.tests) for t in targets) * repeat
    if total == 0:
        echo("No test cases to run.")
        return EXIT_OK
    progress = None
    if is_tty(sys.stderr) and format_ == "text":
        from rich.progress import Progress

        progress = Progress(transient=True)
        task = progress.add_task("Testing prompts", total=total)
        progress.start()

    async def run() -> list[Any]:
        client = InferenceClient(grpc_url(ctx), timeout_s=timeout)
        try:
            return await run_tests(client, targets, _settings(ctx).default_model, repeat=repeat,
                                   concurrency=concurrency,
                                   on_result=(lambda _: progress.advance(task)) if progress else None)
        finally:
            await client.close()

    try:
        results = run_sync(run())
    finally:
        if progress:
            progress.stop()
    if junit:
        atomic_write(junit, junit_xml(results).encode())
    failed = [r for r in results if not r.passed]
    if format_ == "json":
        print_json([{"id": r.test_id, "passed": r.passed, "output": r.output, "latency_ms": round(r.latency_ms, 1),
                     "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                     "finish_reason": r.finish_reason, "error": r.error,
                     "assertions": [a.__dict__ for a in r.assertions]} for r in results])
    else:
        table(("test", "result", "ms", "tokens", "answer"), [
            (r.test_id, "PASS" if r.passed else ("ERROR" if r.error else "FAIL"), f"{r.latency_ms:.0f}",
             tokens(r), (r.error or r.output.strip()).replace("\n", " ")[:60]) for r in results])
        for r in failed:
            for a in r.assertions:
                if not a.passed:
                    echo(f"FAIL {r.test_id}: {a.message}; answer: {r.output.strip()[:200]!r}")
            if r.error:
                echo(f"ERROR {r.test_id}: {r.error}")
        echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return EXIT_USER_ERROR if failed else EXIT_OK


def tokens(result: Any) -> str:
    """A case's token counts as the model reported them: `prompt + answer (finish reason)`; blank on error."""
    if result.prompt_tokens is None:
        return ""
    return f"{result.prompt_tokens} + {result.completion_tokens} ({result.finish_reason or 'done'})"


def chat(ctx: typer.Context,
         ref: Annotated[str, typer.Argument(help="NAME or NAME@REF.")],
         var: Annotated[Optional[list[str]], typer.Option("--var", help="KEY=VALUE overriding a field.")] = None,
         timeout: Annotated[float, typer.Option("--timeout", help="Seconds per answer.")] = 120.0) -> int:
    """Chat with a prompt in the terminal (/reset clears history, /quit or Ctrl-D ends)."""
    from promptops import chat as pipeline
    from promptops.cli.prompts import _load, parse_vars
    from promptops.inference import InferenceClient, iterate_sync, run_sync
    from promptops.render import Turn

    prompt = _load(ctx, ref)
    model = prompt.model or _settings(ctx).default_model
    variables = parse_vars(var or [])
    client = InferenceClient(grpc_url(ctx), timeout_s=timeout)
    history: list[Turn] = []
    echo(f"Chatting with {ref} on {model}. /reset clears the history, /quit ends.", err=True)
    try:
        while True:
            try:
                message = input("you> " if sys.stdin.isatty() else "")
            except EOFError:
                return EXIT_OK
            if message.strip() in ("/quit", "/exit"):
                return EXIT_OK
            if message.strip() == "/reset":
                history.clear()
                continue
            if not message.strip():
                continue
            prepared = pipeline.prepare(prompt, message, history, variables=variables, default_model=model,
                                        source=ref)
            answer = None
            for event in iterate_sync(pipeline.generate(client, prepared)):
                if isinstance(event, str):
                    typer.echo(event, nl=False)
                else:
                    answer = event
            typer.echo("")
            if answer is not None:
                if is_tty(sys.stderr):
                    echo(f"[{answer.prompt_tokens} + {answer.completion_tokens} tokens, "
                         f"{answer.finish_reason or 'done'}]", err=True)
                history += [Turn("user", message), Turn("assistant", answer.text.strip())]
    finally:
        run_sync(client.close())


def register(app: typer.Typer) -> None:
    """Attach the model-facing commands."""
    triton_app.command("up")(boundary(up))
    triton_app.command("down")(boundary(down))
    triton_app.command("status")(boundary(status))
    triton_app.command("logs")(boundary(logs))
    app.add_typer(triton_app, name="triton")
    app.command("test")(boundary(test))
    app.command("chat")(boundary(chat))


__all__ = ["register", "grpc_url", "triton_config"]
