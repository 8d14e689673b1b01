"""Model-facing commands: triton up/down/status/logs, test, runs, chat."""

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
    from promptops.cli.context import settings

    return settings(ctx)


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

    return _settings(ctx).triton_url or local_grpc_url(triton_config(ctx))


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


def _targets(ctx: typer.Context, names: list[str], ref: str | None, changed_since: str | None) -> list[Any]:
    from promptops.evaluation.runner import Target, commit_opener
    from promptops.store.workspace import Workspace

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
        opener = commit_opener(store.git, resolved.commit) if resolved.commit else None
        targets.append(Target(resolved.prompt, label, resolved.commit, resolved.label, opener))
    return targets


def _baselines(ctx: typer.Context, heads: list[Any], ref: str, models: list[str]) -> tuple[list[Any], list[Any]]:
    """(each head target's prompt at `ref` with the head's cases and models, (prompt, why not) for the others).

    A prompt that cannot be resolved at `ref` (new since, no such label) is left out of the
    comparison with the reason; when no prompt can be, the first reason is the error.
    """
    from promptops.evaluation.runner import Target, models_for, with_cases_of
    from promptops.store import open_store

    store = open_store(_settings(ctx))
    bases, skipped = [], []
    for head in heads:
        try:
            resolved = store.resolve(f"{head.prompt.name}@{ref}", default="draft")
        except PromptOpsError as exc:
            skipped.append((head.prompt.name, exc))
            continue
        label = f"v{resolved.version.number}" if resolved.version else "draft"
        chosen = models_for(head, models, _settings(ctx).default_model)
        bases.append(Target(with_cases_of(resolved.prompt, head.prompt), label, resolved.commit, resolved.label,
                            head.opener, chosen))
    if not bases and skipped:
        raise skipped[0][1]
    return bases, [(name, exc.message) for name, exc in skipped]


def _tools(ctx: typer.Context, client: Any, judge: str, judge_model: str | None, embedding_model: str) -> Any:
    """What assertions need: the repository, the embeddings model (`similar`), the judge prompt (`llm-rubric`)."""
    from promptops.cli.prompts import _load
    from promptops.evaluation.assertions import Tools
    from promptops.evaluation.runner import embedder, judge_for

    s = _settings(ctx)
    return Tools(s.repo, s.prompts_dir, embed=embedder(client, embedding_model),
                 judge=judge_for(client, lambda: _load(ctx, judge), s.default_model, model=judge_model))


class _Progress:
    """A progress bar on a TTY; otherwise a plain line on stderr every PLAIN_EVERY_S seconds of a long run."""

    PLAIN_EVERY_S = 10.0

    def __init__(self, total: int | None, enabled: bool) -> None:
        import time

        self.done, self.total, self.started = 0, total, time.monotonic()
        self.last = self.started
        self.bar: Any = None
        if enabled and is_tty(sys.stderr):
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(SpinnerColumn(), TextColumn("Testing prompts"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("test", total=total)
            self.bar.start()
        self.enabled = enabled

    def advance(self, *_: Any) -> None:
        import time

        self.done += 1
        if self.bar is not None:
            self.bar.advance(self.task)
        elif self.enabled and (now := time.monotonic()) - self.last >= self.PLAIN_EVERY_S:
            self.last = now
            of = f" of {self.total}" if self.total else ""
            echo(f"tested {self.done}{of} cases ({self.done / (now - self.started):.1f}/s)", err=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _case_id(run: Any, case: Any, several_models: bool) -> str:
    return f"{run.prompt}@{run.version}::{case.name}" + (f" [{run.model}]" if several_models else "")


def _case_json(run: Any, case: Any, several_models: bool) -> dict[str, Any]:
    from promptops.evaluation.runner import shown_attempt

    attempt = shown_attempt(case)
    return {"id": _case_id(run, case, several_models), "prompt": run.prompt, "version": run.version,
            "model": run.model, "case": case.name, "passed": case.passed, "pass_rate": case.pass_rate,
            "attempts": len(case.attempts), "score": case.score, "output": attempt.answer,
            "latency_ms": round(attempt.latency_ms, 1), "prompt_tokens": attempt.prompt_tokens,
            "completion_tokens": attempt.completion_tokens, "finish_reason": attempt.finish_reason,
            "error": attempt.error, "assertions": [a.to_dict() for a in attempt.assertions]}


def _comparison_json(comparison: Any) -> dict[str, Any]:
    base, head = comparison.base, comparison.head
    return {"prompt": head.prompt, "model": head.model, "base": f"{base.prompt}@{base.version}",
            "head": f"{head.prompt}@{head.version}", "base_run": base.id or None, "head_run": head.id or None,
            "summary": comparison.summary(), "regressed": comparison.regressed,
            "changes": [{"case": c.name, "status": c.status,
                         "base_pass_rate": c.base.pass_rate if c.base else None,
                         "head_pass_rate": c.head.pass_rate if c.head else None,
                         "base_score": c.base.score if c.base else None,
                         "head_score": c.head.score if c.head else None} for c in comparison.changes]}


FAILURES_SHOWN = 20  # per run; the run file and --html have them all
COMPARE_TOLERANCE = 0.01  # score and pass-rate moves this small are "same": float noise is no regression


def _print_text(heads: list[Any], bases: list[Any], comparisons: list[Any], saved: list[str]) -> None:
    from promptops.evaluation.runner import RunSummary, shown_attempt, why_failed

    several = len({r.model for r in heads}) > 1
    rows = []
    for run in [*bases, *heads]:
        row = RunSummary.of(run)
        rows.append((f"{run.prompt}@{run.version}", run.model, row.cases, row.passed, f"{row.pass_rate:.0%}",
                     "" if row.p50_ms is None else f"{row.p50_ms:.0f}",
                     f"{row.prompt_tokens} + {row.completion_tokens}", row.errors or ""))
    table(("prompt", "model", "cases", "passed", "pass rate", "p50 ms", "tokens (prompt + answer)", "errors"), rows)
    for run in heads:
        failed = [c for c in run.cases if not c.passed]
        for case in failed[:FAILURES_SHOWN]:
            answer = shown_attempt(case).answer.strip()[:200]
            word = "ERROR" if case.errored else "FAIL"
            echo(f"{word} {_case_id(run, case, several)}: {why_failed(case)}"
                 + ("" if case.errored else f"; answer: {answer!r}"))
        if len(failed) > FAILURES_SHOWN:
            echo(f"... and {len(failed) - FAILURES_SHOWN} more failed cases of {run.prompt}@{run.version} "
                 f"on {run.model} (see the run file, or --html)")
    for comparison in comparisons:
        base, head = comparison.base, comparison.head
        echo(f"{head.prompt} on {head.model}: {base.version}"
             f"{f' ({base.label})' if base.label else ''} -> {head.version}: {comparison.summary()}")
        for change in (c for c in comparison.changes if c.status != "same"):
            rates = " -> ".join(f"{c.pass_rate:.0%}" if c else "-" for c in (change.base, change.head))
            scores = " -> ".join(f"{c.score:.2f}" if c else "-" for c in (change.base, change.head))
            echo(f"  {change.status} {change.name}: pass rate {rates}, score {scores}")
    if saved:
        echo(f"Saved {len(saved)} run{'s' * (len(saved) != 1)}: {', '.join(saved)}")
    failed = sum(1 for r in heads for c in r.cases if not c.passed)
    echo(f"{sum(len(r.cases) for r in heads) - failed} passed, {failed} failed")


def test(ctx: typer.Context,
         names: Annotated[Optional[list[str]], typer.Argument(help="Prompts to test (default: all).")] = None,
         ref: Annotated[Optional[str], typer.Option("--ref", help="Test this version of each prompt (N, sha, tag, head, approved).")] = None,
         changed_since: Annotated[Optional[str], typer.Option("--changed-since", help="Only prompts changed since this git ref.")] = None,
         models: Annotated[Optional[list[str]], typer.Option("--model", help="Run every case on this model (repeatable: a model matrix; default: the prompt's `models`, else its `model`).")] = None,
         compare: Annotated[Optional[str], typer.Option("--compare", help="Also run each prompt at this ref (a label, version, tag...) on the same cases and report what got better and worse; exit 1 when something regressed.")] = None,
         repeat: Annotated[int, typer.Option("--repeat", min=1, help="Run each case N times its own `repeat` (its min_pass_rate still decides).")] = 1,
         concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight at once.")] = 2,
         junit: Annotated[Optional[Path], typer.Option("--junit", help="Write JUnit XML here.")] = None,
         html: Annotated[Optional[Path], typer.Option("--html", help="Write a self-contained HTML report here.")] = None,
         save: Annotated[bool, typer.Option("--save/--no-save", help="Keep each run in .promptops/runs/.")] = True,
         judge: Annotated[str, typer.Option("--judge", help="The judge prompt of llm-rubric assertions (NAME or NAME@REF).")] = "judge",
         judge_model: Annotated[Optional[str], typer.Option("--judge-model", help="Model the judge runs on (default: the judge prompt's `model`).")] = None,
         embedding_model: Annotated[str, typer.Option("--embedding-model", envvar="PROMPTOPS_EMBEDDING_MODEL", help="Embeddings model of `similar` assertions.")] = "all-minilm-l6-v2",
         format_: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
         timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request.")] = 120.0,
         require_tests: Annotated[bool, typer.Option("--require-tests", help="Fail (exit 1, nothing run) when a selected prompt has no test cases.")] = False) -> int:
    """Run the prompts' test cases (inline and datasets) against the models on Triton; exit 1 when one fails."""
    from promptops.evaluation.reports import html_reports, junit_xml
    from promptops.evaluation.runner import models_for, run_tests
    from promptops.evaluation.runs import compare_runs, save_run
    from promptops.files import atomic_write
    from promptops.triton.client import InferenceClient, run_sync

    if format_ not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--format")
    selected = _targets(ctx, list(names or []), ref, changed_since)
    untested = [t.prompt.name for t in selected if not t.prompt.tests]
    if require_tests and untested:
        # CI approves what passes: a prompt without cases would "pass" without anything being checked.
        raise PromptOpsError(f"no test cases in {', '.join(untested)}",
                             fix="add `tests` cases to the prompt file (README: prompt files), or leave it out of this run")
    heads = [t for t in selected if t.prompt.tests]
    if not heads:
        echo("No test cases to run.")
        return EXIT_OK
    chosen = list(models or [])
    bases, not_compared = _baselines(ctx, heads, compare, chosen) if compare else ([], [])
    default_model = _settings(ctx).default_model
    width = [len(models_for(t, chosen, default_model)) for t in heads]
    inline = all("dataset" not in test for t in heads for test in t.prompt.tests)
    total = sum(len(t.prompt.tests) * n for t, n in zip(heads, width, strict=True)) if inline else None
    if total and bases:
        total += sum(len(b.prompt.tests) * len(b.models) for b in bases)
    progress = _Progress(total, enabled=format_ == "text")

    async def run() -> list[Any]:
        client = InferenceClient(grpc_url(ctx), timeout_s=timeout)
        try:
            return await run_tests(client, [*heads, *bases], default_model,
                                   models=chosen, repeat=repeat, concurrency=concurrency,
                                   tools=_tools(ctx, client, judge, judge_model, embedding_model),
                                   on_case=progress.advance)
        finally:
            await client.close()

    try:
        runs = run_sync(run())
    finally:
        progress.stop()
    head_runs, base_runs = runs[:sum(width)], runs[sum(width):]
    comparisons = []
    if compare:
        by_key = {(r.prompt, r.model): r for r in base_runs}
        comparisons = [compare_runs(by_key[(r.prompt, r.model)], r, tolerance=COMPARE_TOLERANCE)
                       for r in head_runs if (r.prompt, r.model) in by_key]
    repo = _settings(ctx).repo
    saved = [save_run(r, repo).stem for r in runs] if save else []
    if junit:
        atomic_write(junit, junit_xml(head_runs).encode())
    if html:
        paired = {id(c.head): c for c in comparisons}
        atomic_write(html, html_reports([(r, paired.get(id(r))) for r in head_runs]).encode())
    if format_ == "json":
        from promptops.evaluation.runner import RunSummary

        several = len({r.model for r in head_runs}) > 1
        print_json({"passed": all(r.passed for r in head_runs),
                    "regressed": any(c.regressed for c in comparisons),
                    "runs": [{**RunSummary.of(r).to_dict(), "id": r.id or None, "commit": r.commit,
                              "label": r.label, "baseline": i >= len(head_runs)} for i, r in enumerate(runs)],
                    "cases": [_case_json(r, c, several) for r in head_runs for c in r.cases],
                    "comparisons": [_comparison_json(c) for c in comparisons],
                    "not_compared": [{"prompt": name, "reason": why} for name, why in not_compared]})
    else:
        _print_text(head_runs, base_runs, comparisons, saved)
        for name, why in not_compared:
            echo(f"{name}: not compared with {compare}: {why}")
    if compare:
        return EXIT_USER_ERROR if any(c.regressed for c in comparisons) else EXIT_OK
    return EXIT_OK if all(r.passed for r in head_runs) else EXIT_USER_ERROR


def runs(ctx: typer.Context,
         name: Annotated[Optional[str], typer.Argument(help="Only this prompt's runs.")] = None,
         limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="How many (newest first).")] = 20,
         format_: Annotated[str, typer.Option("--format", help="text or json.")] = "text") -> int:
    """List the test runs saved in .promptops/runs/ (newest first): version, model, pass rate."""
    from promptops.evaluation.runs import RUNS_DIR, list_runs, load_run

    repo = _settings(ctx).repo
    rows = []
    for info in reversed(list_runs(repo, name)[-limit:]):
        try:
            run = load_run(repo, info.id)
        except PromptOpsError as exc:
            rows.append({"id": info.id, "prompt": info.prompt, "error": exc.message})
            continue
        rows.append({"id": run.id, "prompt": run.prompt, "version": run.version, "label": run.label,
                     "commit": run.commit, "model": run.model, "cases": len(run.cases),
                     "passed": sum(1 for c in run.cases if c.passed), "pass_rate": run.pass_rate,
                     "file": f"{RUNS_DIR}/{run.id}.json"})
    if format_ == "json":
        print_json(rows)
        return EXIT_OK
    if not rows:
        echo(f"No saved runs{f' of {name}' if name else ''} in {RUNS_DIR}/.")
        return EXIT_OK
    table(("run", "prompt", "label", "model", "passed", "pass rate"), [
        (r["id"], f"{r['prompt']}@{r['version']}" if "version" in r else r["prompt"], r.get("label") or "",
         r.get("model", ""), f"{r['passed']}/{r['cases']}" if "cases" in r else r.get("error", ""),
         f"{r['pass_rate']:.0%}" if "pass_rate" in r else "") for r in rows])
    return EXIT_OK


def chat(ctx: typer.Context,
         ref: Annotated[str, typer.Argument(help="NAME or NAME@REF.")],
         var: Annotated[Optional[list[str]], typer.Option("--var", help="KEY=VALUE overriding a field.")] = None,
         timeout: Annotated[float, typer.Option("--timeout", help="Seconds per answer.")] = 120.0) -> int:
    """Chat with a prompt in the terminal (/reset clears history, /quit or Ctrl-D ends)."""
    from promptops import chat as pipeline
    from promptops.cli.prompts import _load, parse_vars
    from promptops.prompt.render import Turn
    from promptops.triton.client import InferenceClient, iterate_sync, run_sync

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
    app.command("runs")(boundary(runs))
    app.command("chat")(boundary(chat))


__all__ = ["register", "grpc_url", "triton_config"]
