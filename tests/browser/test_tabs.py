"""The Compare and Tests tabs in a real browser: two pinned versions answering side by side, and a test run
started by a signed-in editor (refused to a browser that is not signed in)."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from gateway.ui.compare import race
from promptops.evaluation.runs import list_runs

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]


def greeter(system: str) -> dict:
    """A template prompt with two inline cases for the echo model: one passes, one fails."""
    return {"config": {"max_tokens": 64}, "system": system, "user": "", "template": "{system}{user}",
            "tests": [{"name": "echoes", "vars": {"user": "hi"}, "assert": [{"type": "contains", "value": "G1 hi"}]},
                      {"name": "never", "vars": {"user": "yo"}, "assert": [{"type": "contains", "value": "nope"}]}]}


class SlowService:
    """`Service.generate` stand-in: each side sends 3 deltas `pause` seconds apart, then an Answer (a string here)."""

    def __init__(self) -> None:
        self.closed: list[str] = []

    async def generate(self, prepared, endpoint, caller=None):
        try:
            for n in range(3):
                await asyncio.sleep(prepared.pause)
                yield f"{prepared.name}{n}"
            yield prepared.name + " done"
        finally:
            self.closed.append(prepared.name)


def in_own_loop(coroutine):
    """asyncio.run off the main thread: Playwright's sync API holds the main thread's loop in this module."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_race_streams_both_sides_at_once_and_closing_it_cancels_both():
    service = SlowService()
    sides = {"a": SimpleNamespace(name="a", pause=0.02), "b": SimpleNamespace(name="b", pause=0.03)}

    async def everything():
        return [event async for _, event in race(service, sides)]

    events = in_own_loop(everything())
    assert events.index("b0") < events.index("a2") and events.index("a0") < events.index("b2")  # interleaved
    assert sorted(events) == sorted(["a0", "a1", "a2", "a done", "b0", "b1", "b2", "b done"])

    async def first_only():
        stream = race(service, sides)
        first = await anext(stream)
        await stream.aclose()
        return first

    service.closed.clear()
    assert in_own_loop(first_only()) == ("a", "a0")
    assert sorted(service.closed) == ["a", "b"]  # both generations were closed, so both Triton requests cancelled


def test_compare_streams_two_pinned_versions_side_by_side(page, ui, sign_in, screenshot):
    sign_in(page, ui["url"], roles=("editor",))  # v2 is not approved: only editors are served it
    page.goto(ui["url"] + "/?a=support@1&b=support@2")
    expect(page.get_by_role("tab", name="Compare")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#compare-a-version input")).to_have_value(re.compile(r"^v1 · approved"))
    expect(page.locator("#compare-b-version input")).to_have_value(re.compile(r"^v2 · draft"))
    page.locator("#compare-message textarea").fill("side by side")
    page.locator("#compare-send").click()
    expect(page.locator("#compare-a-answer textarea")).to_have_value("S1 side by side")
    expect(page.locator("#compare-b-answer textarea")).to_have_value("S2 side by side")
    # the echo model answers the prompt's own chunks: 4 in, 4 out
    expect(page.locator("#compare-a-footer")).to_contain_text(re.compile(r"support@1 · \w+ · echo · 4 \+ 4 tokens"))
    expect(page.locator("#compare-b-footer")).to_contain_text(re.compile(r"support@2 · \w+ · echo · 4 \+ 4 tokens"))
    expect(page.locator("#compare-a-footer")).to_contain_text("first token")
    screenshot(page, "compare")
    page.locator("#compare-b-model input").fill("no-such-model")  # a model override: here one Triton lacks
    page.locator("#compare-b-model input").press("Enter")
    page.locator("#compare-send").click()
    expect(page.locator("#compare-b-footer")).to_contain_text("model 'no-such-model' is not served")
    expect(page.locator("#compare-a-footer")).to_contain_text("support@1")  # the other side still answers


def test_tests_tab_runs_a_version_and_lists_the_run(page, ui, sign_in, screenshot):
    ui["repo"].commit({"prompts/greeter.json": greeter("G1 ")}, "greeter v1")
    sign_in(page, ui["url"], "Eve Editor", ("editor",))
    page.get_by_role("tab", name="Tests").click()
    page.locator("#tests-prompt input").click()
    page.get_by_role("option", name="greeter").click()
    expect(page.locator("#tests-version input")).to_have_value(re.compile(r"^v1 · draft"))
    expect(page.locator("#tests-details")).to_contain_text("No runs yet")
    page.locator("#tests-start").click()
    progress = page.locator("#tests-progress")
    expect(progress).to_contain_text("2/2")
    expect(progress).to_contain_text("Done on echo: 1/2 cases passed (50 %)")
    expect(progress).to_contain_text(re.compile(r"[12]/2 pass echoes \(echo\)"))  # words: no emoji font here
    expect(progress).to_contain_text(re.compile(r"[12]/2 FAIL never \(echo\)"))
    runs = page.locator("#tests-runs")
    expect(runs).to_contain_text("50 %")
    expect(runs).to_contain_text("1/2 passed")
    details = page.locator("#tests-details")
    expect(details).to_contain_text("G1 hi")
    expect(details).to_contain_text("expected answer to contain 'nope'")
    expect(details).to_contain_text("never — FAIL (0/1 attempts)")
    expect(details).to_contain_text("FAIL contains: expected answer to contain 'nope'")
    [saved] = list_runs(ui["repo"].path, "greeter")
    expect(page.locator("#tests-run input")).to_have_value(saved.id)
    screenshot(page, "tests")


def test_tests_tab_refuses_to_start_a_run_when_signed_out(page, ui):
    ui["repo"].commit({"prompts/greeter.json": greeter("G1 ")}, "greeter v1")
    page.goto(ui["url"] + "/")
    page.get_by_role("tab", name="Tests").click()
    page.locator("#tests-prompt input").click()
    page.get_by_role("option", name="greeter").click()
    expect(page.locator("#tests-version input")).to_have_value(re.compile(r"^v1 · draft"))
    page.locator("#tests-start").click()
    expect(page.locator("#tests-progress")).to_contain_text("Sign in first")
    assert list_runs(ui["repo"].path, "greeter") == []
