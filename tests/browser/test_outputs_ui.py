"""Output contracts in the browser: the Chat tab shows a structured answer as formatted JSON (or a tool call)
and whether it keeps the contract; the Editor reports a broken embedded schema as you type."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.browser.test_ui import open_editor, send, set_editor_text
from tests.conftest import ECHO_REPOSITORY
from tests.gateway.test_outputs import TICKET, chat_doc, contracts  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]


@pytest.fixture
def url(repo, contracts, serve, monkeypatch):  # noqa: F811 (the fixture imported above)
    monkeypatch.setenv("PROMPTOPS_MODEL_REPOSITORY", str(ECHO_REPOSITORY))  # echo's chat template
    return serve(repo)


@pytest.mark.parametrize("prompt, planted, code, texts", [
    ("ticket", '{"title": "Printer", "priority": "high"}', '"priority": "high"', ["valid against schema"]),
    ("ticket", '{"title": "Printer"}', '"title": "Printer"', ["not valid: $: 'priority' is a required property"]),
    ("tools", '{"name": "weather", "arguments": {"city": "Oslo"}}', '"city": "Oslo"',
     ['Tool call: weather(city="Oslo")', "valid against schema"]),
])
def test_chat_shows_a_structured_answer_and_whether_it_keeps_the_contract(page, url, prompt, planted, code, texts):
    page.goto(f"{url}/?prompt={prompt}")
    expect(page.locator("#chat-notice")).to_contain_text("Pinned to")  # the page load set the version
    send(page, f"please {planted}")
    log = page.locator("#chat-log")
    expect(log.locator("pre code").last).to_contain_text(code)  # the JSON, formatted in a code block
    for text in [*texts, f"served {prompt}@1"]:
        expect(log).to_contain_text(text)


def test_editor_reports_an_invalid_embedded_schema_as_you_type(page, url):
    open_editor(page, {"url": url}, "ticket2")
    broken = {"type": "json_schema", "json_schema": {"name": "t", "schema": {**TICKET, "type": "objekt"}}}
    set_editor_text(page, json.dumps(chat_doc(response_format=broken), indent=2))
    report = page.locator("#edit-validation")
    expect(report).to_contain_text("Invalid")
    expect(report).to_contain_text("$.response_format.json_schema.schema.type")
    expect(report).to_contain_text("not a valid JSON Schema")
