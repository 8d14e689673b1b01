"""Which version answers: approved for a bare name, pins as pinned, drafts only when allowed."""

from __future__ import annotations

import pytest

RULES = [  # (ref, serve_drafts, caller's roles, status, version served): the policy table of docs/security.md
    ("support", False, (), 200, "1"),
    ("support@1", False, (), 200, "1"),
    ("support@prompts/support/v1", False, (), 200, "1"),
    ("support@2", False, (), 403, None),
    ("support@head", False, (), 403, None),
    ("fresh@1", False, (), 403, None),
    ("support@2", False, ("deployer",), 403, None),
    ("support@2", False, ("editor",), 200, "2"),
    ("support@head", False, ("approver",), 200, "2"),
    ("fresh@1", False, ("editor",), 200, "1"),
    ("fresh", False, (), 404, None),
    ("support@draft", False, ("editor",), 400, None),
    ("support", True, (), 200, "2"),
    ("fresh", True, (), 200, "1"),
    ("support@draft", True, (), 200, "draft"),
]


@pytest.mark.parametrize("ref, drafts, roles, status, version", RULES)
def test_serving_rules(make_client, person, ref, drafts, roles, status, version):
    headers = person("Ed Editor", *roles) if roles else {}
    response = make_client(serve_drafts=drafts).post("/v1/chat", json={"prompt": ref, "message": "hi"},
                                                     headers=headers)
    assert response.status_code == status
    assert response.headers.get("x-prompt-version") == version


def test_a_refused_pin_names_the_approved_versions(client):
    error = client.post("/v1/chat", json={"prompt": "support@2", "message": "hi"}).json()["error"]
    assert error["type"] == "not_served"
    assert "approved versions of support: v1 (pin one as support@1)" in error["message"]
    assert "PROMPTOPS_SERVE_UNREVIEWED" in error["fix"]


@pytest.mark.parametrize("headers", [{"authorization": "Bearer po_made_up"}, {"cookie": "promptops_session=nope"}])
def test_an_unknown_credential_is_nobody(client, headers):
    assert client.post("/v1/chat", json={"prompt": "support@2", "message": "hi"}, headers=headers).status_code == 403


def test_the_open_setting_serves_pins_to_everyone(make_client):
    response = make_client(serve_unreviewed=True).post("/v1/chat", json={"prompt": "support@2", "message": "hi"})
    assert (response.status_code, response.headers["x-prompt-version"]) == (200, "2")


def test_pin_by_commit_sha(client, prompts, owner):
    response = client.post("/v1/chat", json={"prompt": f"support@{prompts['support@2'][:10]}", "message": "hi"},
                           headers=owner)
    assert response.json()["text"] == "S2 hi"
    assert response.headers["x-prompt-commit"] == prompts["support@2"]


def test_openai_route_applies_the_same_policy(client, person):
    body = {"model": "support@2", "messages": [{"role": "user", "content": "hi"}]}
    assert client.post("/v1/chat/completions", json=body).status_code == 403
    assert client.post("/v1/chat/completions", json=body, headers=person("Ed", "editor")).status_code == 200


def test_a_system_turn_is_refused_in_history(client):
    body = {"prompt": "support", "message": "hi", "history": [{"role": "system", "content": "INJECTED"}]}
    error = client.post("/v1/chat", json=body).json()["error"]
    assert "history[0] is a system message" in error["message"]


def test_no_approved_version_says_how_to_approve(client):
    error = client.post("/v1/chat", json={"prompt": "fresh", "message": "hi"}).json()["error"]
    assert error["type"] == "not_approved"
    assert "promptops approve fresh" in error["fix"]


def test_a_new_approval_is_served_without_a_commit(client, prompts, repo):
    assert client.post("/v1/chat", json={"prompt": "fresh", "message": "hi"}).status_code == 404
    repo.git("tag", "-a", "-m", "approve", "prompts/fresh/v1", prompts["fresh@1"])  # a tag only: the catalog sees it
    response = client.post("/v1/chat", json={"prompt": "fresh", "message": "hi"})
    assert (response.status_code, response.headers.get("x-prompt-version")) == (200, "1")
    assert client.get("/v1/prompts/fresh").json()["version"]["version"] == 1
