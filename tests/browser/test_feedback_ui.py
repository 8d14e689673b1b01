"""Thumbs on a chat answer in the browser become feedback for the version that answered (promptops/state)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from promptops.state import StateStore
from tests.browser.test_ui import send

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]


@pytest.mark.parametrize("button, score", [("Like", 1.0), ("Dislike", 0.0)])
def test_thumbs_record_feedback_for_the_answering_version(page, ui, button, score):
    page.goto(ui["url"] + "/?prompt=support")
    expect(page.locator("#chat-notice")).to_contain_text("Pinned to")
    send(page, "hello thumbs")
    log = page.locator("#chat-log")
    expect(log).to_contain_text("served support@1")
    log.get_by_role("button", name=button).last.click()
    expect(page.locator("#chat-notice")).to_contain_text("Feedback recorded")
    with StateStore.open(None, ui["repo"].path) as state:
        assert [(record.version, feedback.score) for record, feedback in state.feedback_of("support")] == [(1, score)]
