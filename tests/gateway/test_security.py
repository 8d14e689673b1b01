"""Body size limit, the admin token on writes, approvals, and saves that lost a race."""

from __future__ import annotations

import json

import pytest

from gateway.settings import get_settings


def doc_text(system: str) -> str:
    """A valid prompt file's text."""
    return json.dumps({"config": {"max_tokens": 64}, "system": system, "template": "{system}{user}"}, indent=2)


def test_body_over_the_limit_is_413_json(make_client):
    client = make_client(max_body_bytes=200)
    response = client.post("/v1/chat", json={"prompt": "support", "message": "x" * 500})
    assert (response.status_code, response.json()["error"]["type"]) == (413, "payload_too_large")


def test_chunked_body_over_the_limit_is_413(make_client):
    client = make_client(max_body_bytes=200)
    chunks = iter([b'{"prompt": "support", "message": "', b"x" * 500, b'"}'])
    response = client.post("/v1/chat", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413


WRITES = [  # (settings, authorization header, status)
    ({}, None, 200),
    ({"admin_token": "s3cret"}, None, 403),
    ({"admin_token": "s3cret"}, "Bearer wrong", 403),
    ({"admin_token": "s3cret"}, "Bearer s3cret", 200),
    ({"host": "0.0.0.0"}, None, 403),
    ({"host": "0.0.0.0", "admin_token": "t"}, "Bearer t", 200),
]


@pytest.mark.parametrize("change, auth, status", WRITES)
def test_writes_need_the_admin_token(make_client, prompts, change, auth, status):
    client = make_client(**change)
    headers = {"authorization": auth} if auth else {}
    response = client.put("/v1/prompts/support", headers=headers, json={
        "text": doc_text("S3 "), "base_commit": prompts["support@2"]})
    assert response.status_code == status, response.text


def test_save_then_approve_then_served_by_bare_name(client, prompts):
    saved = client.put("/v1/prompts/support", json={"text": doc_text("S3 "), "base_commit": prompts["support@2"],
                                                    "message": "shorter"}).json()["version"]
    assert (saved["version"], saved["approved"]) == (3, False)
    approved = client.post("/v1/prompts/support/approve", json={"version": 3}).json()
    assert approved["created"] and approved["version"]["tag"] == "prompts/support/v3"
    assert client.post("/v1/chat", json={"prompt": "support", "message": "hi"}).json()["text"] == "S3 hi"


def test_save_on_a_replaced_version_is_409_with_the_current_one(client, prompts):
    response = client.put("/v1/prompts/support", json={"text": doc_text("S3 "), "base_commit": prompts["support@1"]})
    error = response.json()["error"]
    assert (response.status_code, error["current_version"], error["current_commit"]) == (
        409, 2, prompts["support@2"])


def test_invalid_save_writes_nothing(client, repo, prompts):
    response = client.put("/v1/prompts/support", json={"text": json.dumps({"template": "{x"}),
                                                       "base_commit": prompts["support@2"]})
    assert response.status_code == 422
    assert repo.git("rev-parse", "HEAD") == prompts["fresh@1"]


def test_a_read_only_clone_refuses_writes(client, prompts):
    settings = client.app.state.settings.with_(store_url="https://example.invalid/prompts.git")
    client.app.dependency_overrides[get_settings] = lambda: settings
    response = client.post("/v1/prompts/support/approve", json={})
    assert (response.status_code, response.json()["error"]["type"]) == (403, "forbidden")
    assert "read-only clone" in response.json()["error"]["message"]


def test_approve_can_be_switched_off(make_client):
    response = make_client(allow_approve=False).post("/v1/prompts/support/approve", json={})
    assert (response.status_code, response.json()["error"]["type"]) == (403, "forbidden")
