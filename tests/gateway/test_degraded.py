"""A bad commit degrades, it does not take production down: the last good head keeps serving, /readyz says
`degraded`, and a fixing commit is served without a restart."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import doc, labels

BAD = {  # a committed file that does not validate, as `promptops validate` would have caught it
    "labels.json": "{not json",
    "prompts/support.json": '{"config": {}, "template": "{nope}"}',
}


def chat(client, ref: str) -> tuple[int, str | None]:
    response = client.post("/v1/chat", json={"prompt": ref, "message": "hi"})
    return response.status_code, response.json().get("text")


@pytest.mark.parametrize("path", sorted(BAD))
def test_a_bad_commit_keeps_the_last_good_head_serving(client, labelled, repo, path):
    assert chat(client, "support") == (200, "S1 hi")
    repo.commit({path: BAD[path]}, "a bad commit that got through")
    assert chat(client, "support") == (200, "S1 hi")
    assert chat(client, "support@staging") == (200, "S2 hi")
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and "does not validate" in ready["degraded"]
    assert any(path in problem for problem in ready["problems"])
    assert ready["checks"]["commit"] == labelled["labels"]


@pytest.mark.parametrize("path", sorted(BAD))
def test_a_fixing_commit_recovers_without_a_restart(client, labelled, repo, path):
    repo.commit({path: BAD[path]}, "a bad commit")
    assert client.get("/readyz").json().get("degraded")
    fixed = {"labels.json": labels(production=2, staging=2), "prompts/support.json": doc("S3 ")}[path]
    repo.commit({path: fixed}, "the fix")
    assert "degraded" not in client.get("/readyz").json()
    assert client.get("/v1/store").json()["serving"]["degraded"] is False
    assert chat(client, "support")[0] == 200


def test_a_server_started_on_a_bad_head_serves_the_last_good_one(make_client, labelled, repo):
    repo.commit({"labels.json": "{not json"}, "a bad commit")
    client = make_client()
    assert chat(client, "support") == (200, "S1 hi")
    assert client.get("/v1/store").json()["serving"]["commit"] == labelled["labels"]
