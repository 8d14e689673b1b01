"""Tests tab: a prompt's saved test runs (pass rates, every answer and assertion reason), and starting a run.

Runs are the records of `promptops.evaluation.runs` (`.promptops/runs/` of the served repository).
Starting one needs a signed-in editor (the Editor tab's check, `gateway.ui.editor.acting`): it calls
Triton for every case and writes a run file. Progress is yielded as cases finish; the new run is then
listed and opened.

The test runner is being rewritten: `run_version_tests` is the only call into it, so that is the one
place to change when its API does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr

from gateway.auth import Auth
from gateway.serving import Service
from gateway.settings import GatewaySettings
from gateway.ui.common import GetService, describe_error, prompt_names, versions_for
from gateway.ui.editor import acting
from promptops.errors import PromptOpsError
from promptops.evaluation.runs import RunRecord, list_runs, load_run, save_run
from promptops.prompt.model import Prompt
from promptops.store import Resolved

RUN_HEADERS = ["run", "when (UTC)", "version", "model", "pass rate", "cases"]
SHOWN_RUNS = 20  # the newest runs listed
OnCase = Callable[[str, bool], None]  # (case name, passed) as each case finishes


def case_count(prompt: Prompt) -> int | None:
    """How many cases will finish, when known before running (None: it reads a dataset, or runs on several models)."""
    cases = prompt.tests
    if len(prompt.document.get("models") or ()) > 1 or any(isinstance(c, dict) and "dataset" in c for c in cases):
        return None
    return len(cases)


def version_name(resolved: Resolved) -> str:
    return "draft" if resolved.version is None else f"v{resolved.version.number}"


async def run_version_tests(service: Service, resolved: Resolved, on_case: OnCase) -> list[RunRecord]:
    """Run the version's test cases (inline and dataset rows, read at its commit) on its model(s), save one run
    record per model and return them.

    The one call into the test runner (`promptops.evaluation.runner.run_tests`, which returns the records and saves
    nothing). `python` assertions are not run here (`python_checks=False`): the gateway does not execute
    code from the repository; `promptops test` does.
    """
    from promptops.evaluation.assertions import JUDGE_PROMPT, Tools
    from promptops.evaluation.runner import Target, commit_opener, embedder, judge_for, run_tests

    default = service.settings.default_model
    opener = commit_opener(service.store.git, resolved.commit) if resolved.commit else None
    target = Target(resolved.prompt, version_name(resolved), resolved.commit, resolved.label, opener)
    tools = Tools(repo=service.store.repo, prompts_dir=service.settings.prompts_dir, embed=embedder(service.client),
                  judge=judge_for(service.client, lambda: service.resolve(JUDGE_PROMPT).prompt, default),
                  python_checks=False)
    records = await run_tests(service.client, [target], default, tools=tools,
                              on_case=lambda run, case: on_case(f"{case.name} ({run.model})", case.passed))
    for record in records:
        await asyncio.to_thread(save_run, record, service.store.repo)
    return records


def verdict(passed: bool) -> str:
    """Words, not ✅/❌: Gradio's bundled fonts lack those glyphs, and Debian's Chromium (no emoji font) shows boxes."""
    return "**pass**" if passed else "**FAIL**"


def percent(rate: float) -> str:
    return f"{rate * 100:.0f} %"


def run_rows(service: Service, name: str | None) -> tuple[list[list[Any]], list[str]]:
    """The newest runs of `name`, newest first: table rows and their ids."""
    if not name:
        return [], []
    rows, ids = [], []
    for info in reversed(list_runs(service.store.repo, name)[-SHOWN_RUNS:]):
        when = info.started_at.strftime("%Y-%m-%d %H:%M:%S")
        try:
            run = load_run(service.store.repo, info.id)
        except PromptOpsError as exc:
            rows.append([info.id, when, "?", "?", "unreadable", exc.message])
        else:
            passed = sum(1 for c in run.cases if c.passed)
            label = f" ({run.label})" if run.label else ""
            rows.append([info.id, when, run.version + label, run.model, percent(run.pass_rate),
                         f"{passed}/{len(run.cases)} passed"])
        ids.append(info.id)
    return rows, ids


def fence(text: str) -> str:
    """`text` as a Markdown code block whose fence no run of backticks in it can close."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    mark = "`" * max(3, longest + 1)
    return f"{mark}text\n{text}\n{mark}"


def run_details(run: RunRecord) -> str:
    """Markdown: the run's summary, then every case with each answer and each assertion's reason."""
    passed = sum(1 for c in run.cases if c.passed)
    label = f" ({run.label})" if run.label else ""
    commit = f" · `{run.commit[:7]}`" if run.commit else ""
    lines = [f"**{run.prompt} {run.version}{label}**{commit} on {run.model} · {passed}/{len(run.cases)} cases passed "
             f"({percent(run.pass_rate)}) · {run.duration_ms:.0f} ms · run `{run.id}`"]
    for case in run.cases:
        lines.append(f"\n#### {case.name} — {'pass' if case.passed else 'FAIL'} "
                     f"({case.passes}/{len(case.attempts)} attempts)")
        for attempt in case.attempts:
            if attempt.error is not None:
                lines.append(f"- **error**: {attempt.error}")
                continue
            tokens = f"{attempt.prompt_tokens} + {attempt.completion_tokens} tokens · " \
                if attempt.prompt_tokens is not None else ""
            lines.append(f"{tokens}{attempt.latency_ms:.0f} ms\n\n{fence(attempt.answer)}")
            lines += [f"- {verdict(a.passed)} `{a.type}`: {a.reason}" for a in attempt.assertions]
    return "\n".join(lines)


def build_tests(get: GetService, settings: GatewaySettings, auth: Auth) -> dict[str, Any]:
    """The Tests tab's components and events; returns the components the page-load event fills."""
    with gr.Row():
        prompt = gr.Dropdown(label="Prompt", choices=[], elem_id="tests-prompt")
        version = gr.Dropdown(label="Version", choices=[], elem_id="tests-version",
                              info="the same choices as the Chat tab")
        start = gr.Button("Run this version's tests", variant="primary", elem_id="tests-start",
                          interactive=not settings.read_only)
    progress = gr.Markdown(elem_id="tests-progress")
    runs = gr.Dataframe(headers=RUN_HEADERS, label="Last runs of this prompt (newest first)", interactive=False,
                        elem_id="tests-runs", type="array", wrap=True)
    chosen = gr.Dropdown(label="Run details", choices=[], elem_id="tests-run", info="pick a run, or click its row")
    details = gr.Markdown(elem_id="tests-details")

    def listing(service: Service, name: str | None, pick: str | None = None) -> tuple[Any, Any, str]:
        """The runs table, the run picker (on `pick`, else the newest) and that run's details."""
        rows, ids = run_rows(service, name)
        value = pick if pick in ids else (ids[0] if ids else None)
        return rows, gr.update(choices=ids, value=value), show_run(value)

    def show_run(run_id: str | None) -> str:
        if not run_id:
            return "No runs yet."
        try:
            return run_details(load_run(get().store.repo, run_id))
        except PromptOpsError as exc:
            return describe_error(exc)

    def on_prompt(name: str | None) -> tuple[Any, ...]:
        service = get()
        try:
            choices, value, note = versions_for(service, name)
            return (gr.update(choices=choices, value=value), note, *listing(service, name))
        except PromptOpsError as exc:
            return gr.update(choices=[], value=None), describe_error(exc), [], gr.update(choices=[]), ""

    def on_row(table: Any, event: gr.SelectData) -> Any:
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        try:
            return table[row][0]
        except (IndexError, KeyError, TypeError):
            return gr.update()

    async def on_start(name: str | None, ref: str | None,
                       request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        unchanged = (gr.update(), gr.update(), gr.update())
        if not (name and ref):
            yield ("Pick a prompt and a version first.", *unchanged)
            return
        service = get()
        try:
            user = acting(auth, service.settings, request, "editor", "run tests")
            resolved = await service.serve(ref, user)
        except PromptOpsError as exc:
            yield (describe_error(exc), *unchanged)
            return
        what = f"{resolved.name} {version_name(resolved)}"
        total = case_count(resolved.prompt)
        if total == 0:
            yield (f"{what} has no test cases: add `tests` to its prompt file.", *unchanged)
            return
        finished: asyncio.Queue[tuple[str, bool] | None] = asyncio.Queue()

        async def run() -> list[RunRecord]:
            try:
                return await run_version_tests(service, resolved, lambda case, ok: finished.put_nowait((case, ok)))
            finally:
                finished.put_nowait(None)

        task = asyncio.create_task(run())
        lines = [f"Running the test cases of **{what}**…"]
        yield ("\n".join(lines), *unchanged)
        try:
            done = 0
            while (item := await finished.get()) is not None:
                done += 1
                count = f"{done}/{total}" if total is not None else str(done)
                lines.append(f"- {count} {verdict(item[1])} {item[0]}")
                yield ("\n".join(lines), *unchanged)
            records = await task
        except PromptOpsError as exc:
            yield ("\n".join(lines) + "\n\n" + describe_error(exc), *unchanged)
            return
        finally:
            task.cancel()  # the browser went away: stop the run (a no-op when it finished)
        for record in records:
            passed = sum(1 for c in record.cases if c.passed)
            lines.append(f"\n**Done** on {record.model}: {passed}/{len(record.cases)} cases passed "
                         f"({percent(record.pass_rate)}), saved as run `{record.id}`.")
        yield ("\n".join(lines), *listing(service, name, records[-1].id if records else None))

    prompt.input(on_prompt, prompt, [version, progress, runs, chosen, details])
    chosen.change(show_run, chosen, details)
    runs.select(on_row, runs, chosen)
    start.click(on_start, [prompt, version], [progress, runs, chosen, details], concurrency_limit=1)

    def on_load() -> tuple[Any, ...]:
        service = get()
        names = prompt_names(service)
        first = names[0] if names else None
        try:
            choices, value, _ = versions_for(service, first)
            return (gr.update(choices=names, value=first), gr.update(choices=choices, value=value),
                    *listing(service, first))
        except PromptOpsError as exc:
            return gr.update(choices=names, value=None), gr.update(choices=[]), [], gr.update(choices=[]), \
                describe_error(exc)

    return {"load": (on_load, [prompt, version, runs, chosen, details])}
