"""The UI in a real browser: chat on a pinned version, URL pins, first run, labels, the editor, the viewer,
signing in (every save, approval and label move is done as the signed-in person)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from promptops import chat
from promptops.store import PromptStore
from tests.browser.conftest import doc

# Gradio's queue calls a pandas API that pandas 3 deprecates: not ours to fix.
pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]


def choose(page, elem_id: str, option: str) -> None:
    """Pick `option` in a Gradio dropdown."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=re.compile(re.escape(option))).first.click()


def send(page, text: str) -> None:
    page.locator("#chat-message textarea").fill(text)
    page.locator("#chat-send").click()


def test_chat_streams_an_answer_from_a_chosen_version(page, ui, sign_in, screenshot):
    sign_in(page, ui["url"], roles=("editor",))  # v2 is not approved: only editors are served it
    page.goto(ui["url"] + "/")
    expect(page.locator("#chat-version input")).to_have_value(re.compile("newest approved"))
    choose(page, "chat-version", "v2 · draft")
    send(page, "hello browser")
    log = page.locator("#chat-log")
    expect(log).to_contain_text("S2 hello browser")
    expect(log).to_contain_text("served support@2")
    screenshot(page, "chat")


def test_chat_refuses_an_unapproved_version_to_nobody(page, ui):
    page.goto(ui["url"] + "/")
    choose(page, "chat-version", "v2 · draft")
    send(page, "hello browser")
    expect(page.locator("#chat-notice")).to_contain_text("approved versions of support: v1")
    expect(page.locator("#chat-log")).not_to_contain_text("S2 hello browser")


def test_chat_counts_against_the_callers_limit(page, repo, serve, monkeypatch):
    monkeypatch.setattr(chat, "with_overrides", lambda prompt, overrides: {**prompt.config, **overrides})
    repo.commit({"prompts/support.json": doc("S1 ")}, "support v1")
    repo.git("tag", "-a", "-m", "approve", "prompts/support/v1")
    url = serve(repo, max_concurrent_per_caller=1)
    slow = {"prompt": "support", "message": "w " * 300, "stream": True, "config": {"delay_ms": 50}}
    with httpx.stream("POST", f"{url}/v1/chat", json=slow, timeout=30) as held:  # this address's one slot
        lines = held.iter_lines()  # kept: a dropped line iterator closes the connection
        next(lines)
        page.goto(url + "/")
        send(page, "hello")
        expect(page.locator("#chat-notice")).to_contain_text("generation requests in flight")


def test_url_pins_the_version(page, ui):
    page.goto(ui["url"] + "/?prompt=support@1")
    expect(page.locator("#chat-version input")).to_have_value(re.compile(r"^v1 · approved"))
    send(page, "pinned")
    expect(page.locator("#chat-log")).to_contain_text("served support@1")
    expect(page.locator("#chat-log")).to_contain_text("S1 pinned")


def open_editor(page, ui, name: str) -> None:
    if not page.url.startswith(ui["url"]):
        page.goto(ui["url"] + "/")
    page.get_by_role("tab", name="Prompt Editor").click()
    page.locator("#edit-name input, #edit-name textarea").first.fill(name)
    page.locator("#edit-new").click()
    expect(page.locator("#edit-validation")).to_contain_text("Valid prompt")


def set_editor_text(page, text: str) -> None:
    page.locator("#edit-json .cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)  # no key events: CodeMirror's auto-closing brackets stay out of it


def test_editor_refuses_an_invalid_prompt_and_writes_nothing(page, ui, sign_in):
    before = ui["repo"].git("rev-parse", "HEAD")
    sign_in(page, ui["url"])
    open_editor(page, ui, "broken")
    set_editor_text(page, '{"config": {"top_p": "7"}, "template": "{nope}"}')
    expect(page.locator("#edit-validation")).to_contain_text("Invalid")
    expect(page.locator("#edit-validation")).to_contain_text("unknown placeholder {nope}")
    page.locator("#edit-save").click()
    expect(page.locator("#edit-result")).to_contain_text("nothing was written")
    assert ui["repo"].git("rev-parse", "HEAD") == before
    assert not (ui["repo"].path / "prompts" / "broken.json").exists()


def test_editor_saves_a_new_version_as_the_signed_in_person(page, ui, sign_in, screenshot):
    sign_in(page, ui["url"], "Eve Editor", ("editor",))
    expect(page).to_have_url(ui["url"] + "/")  # the token left the address bar
    cookie = next(c for c in page.context.cookies() if c["name"] == "promptops_session")
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    expect(page.locator("#signed-in")).to_contain_text("Signed in as Eve Editor")
    open_editor(page, ui, "greeter")
    page.locator("#edit-message textarea, #edit-message input").first.fill("Add greeter")
    page.locator("#edit-save").click()
    expect(page.locator("#edit-result")).to_contain_text("Saved greeter v1")
    assert ui["repo"].git("log", "-1", "--format=%s") == "Add greeter"
    assert ui["repo"].git("log", "-1", "--format=%an <%ae>") == "Eve Editor <eve@example.com>"
    assert ui["repo"].git("show", "HEAD:prompts/greeter.json").startswith("{")
    screenshot(page, "editor")


def test_editor_without_signing_in_writes_nothing(page, ui):
    before = ui["repo"].git("rev-parse", "HEAD")
    page.goto(ui["url"] + "/")
    expect(page.locator("#signed-in")).to_contain_text("Not signed in")
    expect(page.locator("#edit-token")).to_have_count(0)  # no token box: the session cookie is the credential
    open_editor(page, ui, "greeter")
    page.locator("#edit-save").click()
    expect(page.locator("#edit-result")).to_contain_text("Sign in first")
    assert ui["repo"].git("rev-parse", "HEAD") == before


def test_editor_approves_as_the_signed_in_approver_and_signs_out(page, ui, sign_in):
    sign_in(page, ui["url"], "Amy Approver", ("approver",))
    page.get_by_role("tab", name="Prompt Editor").click()
    choose(page, "edit-open", "support")
    expect(page.locator("#edit-state")).to_contain_text("from v2")
    page.locator("#edit-approve").click()
    expect(page.locator("#edit-result")).to_contain_text("Approved support v2")
    tag = ui["repo"].git("for-each-ref", "--format=%(contents)", "refs/tags/prompts/support/v2")
    assert "Approved-by: Amy Approver <amy@example.com>" in tag
    page.locator("#edit-save").click()  # an approver is not an editor
    expect(page.locator("#edit-result")).to_contain_text("needs the editor role")
    page.locator("#signout").click()
    expect(page.locator("#signed-in")).to_contain_text("Not signed in")


def test_token_reads_show_the_sign_in_page_then_the_ui(page, repo, serve, sign_in, make_prompt):
    repo.commit({"prompts/support.json": make_prompt(system="D1 ")}, "support v1")
    url = serve(repo, read_access="token")
    page.goto(url + "/")
    expect(page.locator("form[action='/signin']")).to_be_visible()
    sign_in(page, url, "Rita Reader", ("editor",))
    expect(page.locator("#chat-notice")).to_contain_text("Chatting with draft v1")
    page.locator("#chat-message textarea").fill("signed in")
    page.keyboard.press("Enter")
    expect(page.locator("#chat-log")).to_contain_text("D1 signed in")


def test_viewer_shows_history_and_a_diff(page, ui, screenshot):
    page.goto(ui["url"] + "/")
    page.get_by_role("tab", name="Prompt Viewer").click()
    expect(page.locator("#view-history")).to_contain_text("support v2")
    page.locator("#diff-show").click()
    expect(page.locator("#diff-output")).to_contain_text("+S2")
    expect(page.locator("#diff-output")).to_contain_text("-S1")
    screenshot(page, "viewer")


def test_first_run_answers_on_the_newest_draft_with_no_clicks(page, repo, serve, make_prompt, sign_in, screenshot):
    repo.commit({"prompts/support.json": make_prompt(system="D1 ")}, "support v1")
    sign_in(page, serve(repo), "Olive Owner")  # the link `promptops serve` prints: it lands on the chat
    page.goto(page.url.split("?")[0].rstrip("/") + "/")
    expect(page.locator("#chat-notice")).to_contain_text("Chatting with draft v1 (not approved)")
    page.locator("#chat-message textarea").fill("first question")
    page.keyboard.press("Enter")
    expect(page.locator("#chat-log")).to_contain_text("D1 first question")
    expect(page.locator("#chat-log")).to_contain_text("served support@1")
    expect(page.locator("#chat-notice")).to_contain_text("served only approved versions")
    screenshot(page, "chat-first-run")


def test_read_only_clone_never_preselects_a_draft(page, repo, serve, make_prompt, tmp_path_factory):
    repo.commit({"prompts/support.json": make_prompt(system="D1 ")}, "support v1")
    page.goto(serve(repo, store_url=str(repo.path), clone_dir=tmp_path_factory.mktemp("clone") / "c",
                    refresh_s=0) + "/")
    expect(page.locator("#chat-notice")).to_contain_text("pick a draft version explicitly")
    expect(page.locator("#chat-version input")).to_have_value("")
    send(page, "anyone?")
    expect(page.locator("#chat-notice")).to_contain_text("Pick a prompt and a version first")


def test_picker_shows_labels_and_a_label_pin_follows_it(page, labelled):
    page.goto(labelled["url"] + "/")
    expect(page.locator("#chat-version input")).to_have_value("production (v1)")
    page.locator("#chat-version input").click()
    expect(page.get_by_role("option", name=re.compile(r"^v1 · production · approved · "))).to_be_visible()
    expect(page.get_by_role("option", name=re.compile(r"^v2 · staging · draft \(not approved\) · "))).to_be_visible()
    page.goto(labelled["url"] + "/?prompt=support@staging")
    expect(page.locator("#chat-version input")).to_have_value("staging (v2)")
    send(page, "via label")
    expect(page.locator("#chat-log")).to_contain_text("S2 via label")
    expect(page.locator("#chat-log")).to_contain_text("served support@2 (staging)")


def test_viewer_lists_label_history(page, labelled):
    PromptStore(labelled["repo"].path).promote("support@1", "staging", commit=True, author=("Bo", "bo@example.com"))
    page.goto(labelled["url"] + "/")
    page.get_by_role("tab", name="Prompt Viewer").click()
    table = page.locator("#view-labels")
    expect(table).to_contain_text("production")
    expect(table.get_by_role("row")).to_have_count(4)  # header; production v1; staging v1 (newest), v2
    expect(table).to_contain_text("Bo")


def test_editor_promotes_and_shows_a_refused_protected_label(page, ui, sign_in, screenshot):
    sign_in(page, ui["url"], "Dee Deployer", ("deployer",))
    page.get_by_role("tab", name="Prompt Editor").click()
    choose(page, "edit-open", "support")
    expect(page.locator("#edit-state")).to_contain_text("from v2")
    choose(page, "edit-label", "staging")
    page.locator("#edit-promote").click()
    expect(page.locator("#edit-result")).to_contain_text("support: staging (unset) -> v2")
    assert PromptStore(ui["repo"].path).labels().of("support") == {"staging": 2}
    assert ui["repo"].git("log", "-1", "--format=%an <%ae>") == "Dee Deployer <dee@example.com>"
    choose(page, "edit-label", "production")
    page.locator("#edit-promote").click()
    expect(page.locator("#edit-result")).to_contain_text("production is a protected label")
    screenshot(page, "editor-promote-refused")
    assert PromptStore(ui["repo"].path).labels().of("support") == {"staging": 2}
