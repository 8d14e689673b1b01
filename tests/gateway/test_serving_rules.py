"""Which version answers: approved for a bare name, pins as pinned, drafts only when allowed."""

from __future__ import annotations

import pytest

RULES = [  # (ref, serve_drafts, status, version served)
    ("support", False, 200, "1"),
    ("support@2", False, 200, "2"),
    ("support@head", False, 200, "2"),
    ("support@prompts/support/v1", False, 200, "1"),
    ("fresh@1", False, 200, "1"),
    ("fresh", False, 404, None),
    ("support@draft", False, 400, None),
    ("support", True, 200, "2"),
    ("fresh", True, 200, "1"),
    ("support@draft", True, 200, "draft"),
]


@pytest.mark.parametrize("ref, drafts, status, version", RULES)
def test_serving_rules(make_client, ref, drafts, status, version):
    response = make_client(serve_drafts=drafts).post("/v1/chat", json={"prompt": ref, "message": "hi"})
    assert response.status_code == status
    assert response.headers.get("x-prompt-version") == version


def test_pin_by_commit_sha(client, prompts):
    response = client.post("/v1/chat", json={"prompt": f"support@{prompts['support@2'][:10]}", "message": "hi"})
    assert response.json()["text"] == "S2 hi"
    assert response.headers["x-prompt-commit"] == prompts["support@2"]


def test_no_approved_version_says_how_to_approve(client):
    error = client.post("/v1/chat", json={"prompt": "fresh", "message": "hi"}).json()["error"]
    assert error["type"] == "not_approved"
    assert "promptops approve fresh" in error["fix"]
