"""POST /v1/chat: JSON and Server-Sent Events, headers, overrides, and every Triton failure."""

from __future__ import annotations

import json
import re

import pytest

from promptops import chat
from promptops.triton import launcher as triton


def events(text: str) -> list[tuple[str, dict]]:
    """Parse an SSE body into (event, data) pairs; every event must be `event:` + one `data:` line."""
    frames = [f for f in text.split("\n\n") if f]
    parsed = []
    for frame in frames:
        kind, data = frame.split("\n")
        parsed.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return parsed


@pytest.fixture
def raw_sampling(monkeypatch):
    """Let `config` reach the echo model unchecked, to ask it for failures (`fail_after`, `delay_ms`)."""
    monkeypatch.setattr(chat, "with_overrides", lambda prompt, overrides: {**prompt.config, **overrides})


def test_json_answer_with_version_facts_and_headers(client, prompts):
    response = client.post("/v1/chat", json={"prompt": "support", "message": "hello there"})
    body = response.json()
    assert (body["text"], body["version"], body["model"]) == ("S1 hello there", "1", "echo")
    # The echo model's tokens are whitespace-ended chunks: its own counts, as a real model's would be.
    assert (body["usage"], body["finish_reason"]) == ({"prompt_tokens": 3, "completion_tokens": 3,
                                                       "total_tokens": 6}, "stop")
    assert body["timing"]["ttft_ms"] > 0
    assert {k: response.headers[k] for k in ("x-prompt-name", "x-prompt-version", "x-prompt-commit", "x-model")} == {
        "x-prompt-name": "support", "x-prompt-version": "1", "x-prompt-commit": prompts["support@1"],
        "x-model": "echo"}


def test_sse_framing_tokens_then_done(client, prompts, owner):
    with client.stream("POST", "/v1/chat", json={"prompt": "support@2", "message": "a b", "stream": True},
                       headers=owner) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-prompt-version"] == "2"
        parsed = events(r.read().decode())
    assert parsed[:-1] == [("token", {"text": "S2 "}), ("token", {"text": "a "}), ("token", {"text": "b"})]
    kind, done = parsed[-1]
    assert (kind, done["version"], done["commit"], done["model"]) == ("done", "2", prompts["support@2"], "echo")
    assert (done["usage"], done["finish_reason"]) == ({"prompt_tokens": 3, "completion_tokens": 3,
                                                       "total_tokens": 6}, "stop")
    assert done["timing"]["total_ms"] >= done["timing"]["ttft_ms"]


def test_max_tokens_ends_the_answer_with_length(client):
    body = client.post("/v1/chat", json={"prompt": "support", "message": "a b c", "config": {"max_tokens": 2}}).json()
    assert (body["text"], body["usage"]["completion_tokens"], body["finish_reason"]) == ("S1 a ", 2, "length")


def test_history_reaches_the_template(client):
    body = client.post("/v1/chat", json={"prompt": "support", "message": "now", "history": [
        {"role": "user", "content": "before"}, {"role": "assistant", "content": "ok"}]}).json()
    assert body["text"] == "S1 user: before\nassistant: ok\nnow"


@pytest.mark.parametrize("payload, status, kind", [
    ({"config": {"max_tokens": 2}}, 200, None),
    ({"config": {"temperature": -1}}, 422, "prompt_invalid"),
    ({"config": {"bogus": 1}}, 422, "prompt_invalid"),
    ({"history": [{"role": "wizard", "content": "x"}]}, 400, "prompt_ops_error"),
    ({"unknown": 1}, 422, "invalid_request"),
])
def test_overrides_and_payload_are_checked(client, payload, status, kind):
    response = client.post("/v1/chat", json={"prompt": "support", "message": "a b c", **payload})
    assert response.status_code == status
    assert kind is None or response.json()["error"]["type"] == kind


@pytest.mark.parametrize("change, status, kind", [
    ({"triton_url": f"127.0.0.1:{triton.free_ports(1)[0]}"}, 503, "server_unavailable"),
    ({"default_model": "missing-model"}, 503, "model_not_found"),
])
def test_triton_failures_before_the_answer(make_client, change, status, kind):
    for stream in (False, True):
        response = make_client(**change).post("/v1/chat", json={"prompt": "support", "message": "hi",
                                                                "stream": stream})
        assert (response.status_code, response.json()["error"]["type"]) == (status, kind)
        assert response.headers["x-prompt-version"] == "1"


@pytest.mark.parametrize("config, change, status, kind", [
    ({"fail_after": 0}, {}, 502, "model_error"),
    ({"delay_ms": 400}, {"request_timeout_s": 0.2}, 504, "inference_timeout"),
])
def test_model_errors_and_timeouts(make_client, raw_sampling, config, change, status, kind):
    response = make_client(**change).post("/v1/chat", json={"prompt": "support", "message": "hi", "config": config})
    assert (response.status_code, response.json()["error"]["type"]) == (status, kind)


def test_failure_mid_stream_is_an_error_event(client, raw_sampling):
    with client.stream("POST", "/v1/chat", json={"prompt": "support", "message": "a b c", "stream": True,
                                                 "config": {"fail_after": 2}}) as response:
        assert response.status_code == 200
        parsed = events(response.read().decode())
    assert [kind for kind, _ in parsed] == ["token", "token", "error"]
    assert parsed[-1][1]["error"]["type"] == "model_error"


@pytest.mark.parametrize("body, ttft", [
    ({"prompt": "support", "message": "a b"}, True),
    ({"prompt": "support", "message": "a b", "stream": True}, True),
    ({"prompt": "nope", "message": "a b"}, False),
])
def test_every_answer_says_the_gateway_s_own_time(client, prompts, body, ttft):
    timing = client.post("/v1/chat", json=body).headers["server-timing"]
    match = re.fullmatch(r"gateway;dur=([0-9.]+)(, ttft;dur=([0-9.]+))?", timing)
    assert match and float(match[1]) > 0
    assert (match[3] is not None) == ttft
