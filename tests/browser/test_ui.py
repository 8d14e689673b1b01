"""The UI in a real browser: chat on a pinned version, URL pins, the editor, the viewer's diff."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

# Gradio's queue calls a pandas API that pandas 3 deprecates: not ours to fix.
pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]


def choose(page, elem_id: str, option: str) -> None:
    """Pick `option` in a Gradio dropdown."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=re.compile(re.escape(option))).first.click()


def send(page, text: str) -> None:
    page.locator("#chat-message textarea").fill(text)
    page.locator("#chat-send").click()


def test_chat_streams_an_answer_from_a_chosen_version(page, ui, screenshot):
    page.goto(ui["url"] + "/")
    expect(page.locator("#chat-version input")).to_have_value(re.compile("newest approved"))
    choose(page, "chat-version", "v2 · draft")
    send(page, "hello browser")
    log = page.locator("#chat-log")
    expect(log).to_contain_text("S2 hello browser")
    expect(log).to_contain_text("served support@2")
    screenshot(page, "chat")


def test_url_pins_the_version(page, ui):
    page.goto(ui["url"] + "/?prompt=support@1")
    expect(page.locator("#chat-version input")).to_have_value(re.compile(r"^v1 ✓ approved"))
    send(page, "pinned")
    expect(page.locator("#chat-log")).to_contain_text("served support@1")
    expect(page.locator("#chat-log")).to_contain_text("S1 pinned")


def open_editor(page, ui, name: str) -> None:
    page.goto(ui["url"] + "/")
    page.get_by_role("tab", name="Prompt Editor").click()
    page.locator("#edit-name input, #edit-name textarea").first.fill(name)
    page.locator("#edit-new").click()
    expect(page.locator("#edit-validation")).to_contain_text("Valid prompt")


def set_editor_text(page, text: str) -> None:
    page.locator("#edit-json .cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)  # no key events: CodeMirror's auto-closing brackets stay out of it


def test_editor_refuses_an_invalid_prompt_and_writes_nothing(page, ui):
    before = ui["repo"].git("rev-parse", "HEAD")
    open_editor(page, ui, "broken")
    set_editor_text(page, '{"config": {"top_p": "7"}, "template": "{nope}"}')
    expect(page.locator("#edit-validation")).to_contain_text("Invalid")
    expect(page.locator("#edit-validation")).to_contain_text("unknown placeholder {nope}")
    page.locator("#edit-save").click()
    expect(page.locator("#edit-result")).to_contain_text("nothing was written")
    assert ui["repo"].git("rev-parse", "HEAD") == before
    assert not (ui["repo"].path / "prompts" / "broken.json").exists()


def test_editor_saves_a_new_version(page, ui, screenshot):
    open_editor(page, ui, "greeter")
    page.locator("#edit-message textarea, #edit-message input").first.fill("Add greeter")
    page.locator("#edit-save").click()
    expect(page.locator("#edit-result")).to_contain_text("Saved greeter v1")
    assert ui["repo"].git("log", "-1", "--format=%s") == "Add greeter"
    assert ui["repo"].git("show", "HEAD:prompts/greeter.json").startswith("{")
    screenshot(page, "editor")


def test_viewer_shows_history_and_a_diff(page, ui, screenshot):
    page.goto(ui["url"] + "/")
    page.get_by_role("tab", name="Prompt Viewer").click()
    expect(page.locator("#view-history")).to_contain_text("support v2")
    page.locator("#diff-show").click()
    expect(page.locator("#diff-output")).to_contain_text("+S2")
    expect(page.locator("#diff-output")).to_contain_text("-S1")
    screenshot(page, "viewer")
