"""POST /v1/store/refresh: a signed GitHub push (or a deployer's token) refreshes the store at once.

`labelled`: support production -> v1, staging -> v2. The clones here never refresh on their own
(refresh_s=0) unless a test says so, so only the webhook can make them see a move.
"""

from __future__ import annotations

import json
import time

import pytest

from gateway.deps import webhook_signature
from promptops.store import remote

SECRET = "hook-secret"
PUSH = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()


def signed(body: bytes = PUSH, secret: str = SECRET, event: str = "push") -> dict[str, str]:
    return {"X-Hub-Signature-256": webhook_signature(secret, body), "X-GitHub-Event": event,
            "Content-Type": "application/json"}


def staging(client) -> str:
    """The version `support@staging` is served at."""
    return client.post("/v1/chat", json={"prompt": "support@staging", "message": "hi"}).headers["x-prompt-version"]


def move_staging(repo) -> str:
    moved = {"protected": ["production"], "labels": {"support": {"production": 1, "staging": 1}}}
    return repo.commit({"labels.json": moved}, "staging -> v1")


def test_fetch_reports_a_label_move(labelled, repo, tmp_path_factory):
    clone = remote.clone(str(repo.path), tmp_path_factory.mktemp("clone") / "clone", "main")
    assert remote.fetch(clone, "main") is False
    move_staging(repo)
    assert remote.fetch(clone, "main") is True


def test_signed_push_serves_a_label_move_at_once(labelled, repo, make_clone):
    client = make_clone(webhook_secret=SECRET)
    assert staging(client) == "2"
    head = move_staging(repo)
    assert staging(client) == "2"  # nothing fetched yet
    response = client.post("/v1/store/refresh", content=PUSH, headers=signed())
    assert (response.status_code, response.json()) == (200, {"refreshed": True, "head": head})
    assert staging(client) == "1"
    assert client.get("/v1/store").json()["refresh"]["commit"] == head


REFUSED = [  # (headers, why)
    ({"X-GitHub-Event": "push"}, "no X-Hub-Signature-256"),
    ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "does not match"),
    (signed(secret="another-secret"), "does not match"),
    (signed(body=b"{}"), "does not match"),  # signed for another body
    ({"X-Hub-Signature-256": "sha1=abc"}, "does not match"),
    ({"Authorization": "Bearer not-the-token"}, "no X-Hub-Signature-256"),  # an invalid token is no credential
]


@pytest.mark.parametrize("headers, why", REFUSED)
def test_unsigned_or_badly_signed_is_401_and_changes_nothing(labelled, repo, make_clone, headers, why):
    client = make_clone(webhook_secret=SECRET)
    move_staging(repo)
    response = client.post("/v1/store/refresh", content=PUSH, headers=headers)
    assert (response.status_code, response.json()["error"]["type"]) == (401, "unauthorized")
    assert why in response.json()["error"]["message"] and response.json()["error"]["fix"]
    assert staging(client) == "2"


AUTH = [  # (settings, headers, status)
    ({}, signed(), 403),  # no secret configured: a signature cannot be checked
    ({}, {}, 401),
    ({}, "editor", 403),  # a valid token without the deployer role
    ({}, "deployer", 200),
    ({"admin_token": "t"}, {"Authorization": "Bearer t"}, 200),
    ({"admin_token": "t", "webhook_secret": SECRET}, {"Authorization": "Bearer t"}, 200),
]


@pytest.mark.parametrize("change, headers, status", AUTH)
def test_without_a_secret_only_a_deployer_refreshes(labelled, repo, make_clone, person, change, headers, status):
    client = make_clone(**change)
    if isinstance(headers, str):
        headers = person(f"Someone {headers}", headers)
    move_staging(repo)
    response = client.post("/v1/store/refresh", content=PUSH, headers=headers)
    assert response.status_code == status, response.text
    assert staging(client) == ("1" if status == 200 else "2")


def test_signed_ping_is_answered_without_refreshing(labelled, repo, make_clone):
    client = make_clone(webhook_secret=SECRET)
    move_staging(repo)
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    response = client.post("/v1/store/refresh", content=body, headers=signed(body, event="ping"))
    assert (response.status_code, response.json()["refreshed"], response.json()["event"]) == (200, False, "ping")
    assert staging(client) == "2"


def test_refresh_of_the_repository_served_in_place(labelled, repo, make_client):
    client = make_client(admin_token="t")
    auth = {"Authorization": "Bearer t"}
    assert client.post("/v1/store/refresh", headers=auth).json() == {"refreshed": False, "head": labelled["labels"]}
    head = move_staging(repo)
    assert client.post("/v1/store/refresh", headers=auth).json() == {"refreshed": True, "head": head}


def test_periodic_refresh_serves_a_label_move(labelled, repo, make_clone):
    client = make_clone(refresh_s=0.2)
    move_staging(repo)
    deadline = time.monotonic() + 10
    while staging(client) != "1" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert staging(client) == "1"
