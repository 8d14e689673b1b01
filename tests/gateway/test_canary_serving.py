"""A canary label at the gateway's doors: the split is sticky per key, answers say which version served them,
pins are never split, and every answer's request id takes feedback (promptops/state, SQLite here)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest


def canary_labels(weight: float) -> dict[str, Any]:
    return {"protected": ["production"],
            "labels": {"support": {"production": {"version": 1, "canary": {"version": 2, "weight": weight}}}}}


@pytest.fixture
def canary(repo, prompts):
    """support v1 and v2 approved; production -> v1 with v2 as a 50 % canary."""
    repo.git("tag", "-a", "-m", "approve", "prompts/support/v2", prompts["support@2"])
    repo.commit({"labels.json": canary_labels(50)}, "canary v2 at 50%")


def ask(client, key: str, prompt: str = "support", **body: Any):
    return client.post("/v1/chat", json={"prompt": prompt, "message": "hi", **body}, headers={"X-Prompt-Sticky": key})


def test_the_split_is_sticky_and_answers_say_canary(client, canary):
    served = {key: ask(client, key) for key in (f"k{i}" for i in range(60))}
    versions = Counter(r.headers["X-Prompt-Version"] for r in served.values())
    assert set(versions) == {"1", "2"}
    assert all(r.headers["X-Prompt-Label"] == ("production; canary" if r.headers["X-Prompt-Version"] == "2"
                                                else "production") for r in served.values())
    again = {key: ask(client, key).headers["X-Prompt-Version"] for key in list(served)[:10] * 3}
    assert all(version == served[key].headers["X-Prompt-Version"] for key, version in again.items())


def test_pins_are_never_split(client, canary):
    answers = [ask(client, f"k{i}", prompt="support@1") for i in range(20)]
    assert {(r.headers["X-Prompt-Version"], r.headers.get("X-Prompt-Label")) for r in answers} == {("1", None)}


def test_feedback_names_the_version_that_answered(client, canary):
    answered = ask(client, "k7")
    request_id = answered.headers["X-Request-Id"]
    saved = client.post("/v1/feedback", json={"request_id": request_id, "thumbs": "up", "comment": "good"})
    assert saved.status_code == 200, saved.text
    assert (saved.json()["version"], saved.json()["canary"]) == (int(answered.headers["X-Prompt-Version"]),
                                                                 answered.headers["X-Prompt-Version"] == "2")


@pytest.mark.parametrize("body, status", [({"request_id": "nope", "score": 0.5}, 404),
                                          ({"request_id": "x", "score": 1.5}, 422),
                                          ({"request_id": "x", "score": 1, "thumbs": "up"}, 422)])
def test_feedback_refusals(client, canary, body, status):
    assert client.post("/v1/feedback", json=body).status_code == status


def test_feedback_survives_a_restart(make_client, canary):
    first = make_client()
    request_id = ask(first, "k1").headers["X-Request-Id"]
    first.__exit__(None, None, None)  # shut down: the lifespan flushes and closes the state store
    restarted = make_client()  # a new app on the same repository: the same SQLite file
    assert restarted.post("/v1/feedback", json={"request_id": request_id, "score": 0.25}).status_code == 200


def test_the_openai_id_takes_feedback(client, canary):
    answer = client.post("/v1/chat/completions", json={"model": "support", "user": "u1",
                                                       "messages": [{"role": "user", "content": "hi"}]}).json()
    assert answer["id"].startswith("chatcmpl-")
    assert client.post("/v1/feedback", json={"request_id": answer["id"], "thumbs": "down"}).status_code == 200
