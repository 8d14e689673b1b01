"""`promptops test` (run the prompts' test cases against the models) and `promptops runs` (the saved runs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from promptops.cli.boundary import EXIT_OK, EXIT_USER_ERROR, boundary
from promptops.cli.context import settings
from promptops.cli.output import Format, echo, is_tty, print_json, resolve_format, table
from promptops.cli.triton import grpc_url
from promptops.errors import PromptOpsError


def _targets(ctx: typer.Context, names: list[str], ref: str | None, changed_since: str | None) -> list[Any]:
    from promptops.evaluation.runner import Target, commit_opener
    from promptops.store.workspace import Workspace

    s = settings(ctx)
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

    store = open_store(settings(ctx))
    bases, skipped = [], []
    for head in heads:
        try:
            resolved = store.resolve(f"{head.prompt.name}@{ref}", default="draft")
        except PromptOpsError as exc:
            skipped.append((head.prompt.name, exc))
            continue
        label = f"v{resolved.version.number}" if resolved.version else "draft"
        chosen = models_for(head, models, settings(ctx).default_model)
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

    s = settings(ctx)
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
    for run in [*bases, *heads]:  # prompts with an output contract: the share of answers that parse and validate
        conformance = getattr(run, "conformance", None)
        if conformance is not None:
            echo(f"{run.prompt}@{run.version} on {run.model}: structured answers {conformance.text()}")
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
         dataset: Annotated[Optional[Path], typer.Option("--dataset", help="Run the rows of this JSONL or CSV file (any path, e.g. a capture: .promptops/captures/NAME.jsonl) instead of the prompts' own cases; captured rows run on the prompt they were captured for.")] = None,
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
    if dataset is not None:
        from dataclasses import replace

        from promptops.evaluation.datasets import with_dataset

        selected = [replace(t, prompt=with_dataset(t.prompt, dataset)) for t in selected]
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
    default_model = settings(ctx).default_model
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
    repo = settings(ctx).repo
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


RUN_KEYS = ("id", "prompt", "version", "label", "commit", "model", "cases", "passed", "pass_rate", "file", "error")


def runs(ctx: typer.Context,
         name: Annotated[Optional[str], typer.Argument(help="Only this prompt's runs.")] = None,
         limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="How many (newest first).")] = 20,
         format_: Format = None) -> int:
    """List the test runs saved in .promptops/runs/ (newest first): version, model, pass rate."""
    from promptops.evaluation.runs import RUNS_DIR, list_runs, load_run

    repo = settings(ctx).repo
    rows = []
    for info in reversed(list_runs(repo, name)[-limit:]):
        row: dict[str, Any] = dict.fromkeys(RUN_KEYS)  # the same keys on every row: unreadable runs say why
        row.update(id=info.id, prompt=info.prompt, file=f"{RUNS_DIR}/{info.id}.json")
        try:
            run = load_run(repo, info.id)
        except PromptOpsError as exc:
            rows.append({**row, "error": exc.message})
            continue
        rows.append({**row, "version": run.version, "label": run.label, "commit": run.commit, "model": run.model,
                     "cases": len(run.cases), "passed": sum(1 for c in run.cases if c.passed),
                     "pass_rate": run.pass_rate})
    if not rows and resolve_format(format_) != "json":
        echo(f"No saved runs{f' of {name}' if name else ''} in {RUNS_DIR}/.", err=True)  # keeps piped TSV clean
        return EXIT_OK
    table(("run", "prompt", "label", "model", "passed", "pass rate"), [
        (r["id"], r["prompt"] if r["error"] else f"{r['prompt']}@{r['version']}", r["label"] or "", r["model"] or "",
         r["error"] or f"{r['passed']}/{r['cases']}", "" if r["error"] else f"{r['pass_rate']:.0%}")
        for r in rows], fmt=format_, records=rows)
    return EXIT_OK


def register(app: typer.Typer) -> None:
    """Attach `test` and `runs`."""
    app.command("test")(boundary(test))
    app.command("runs")(boundary(runs))


__all__ = ["register"]
