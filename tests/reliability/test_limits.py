"""Limits with clear answers: the max_tokens cap (422), the deadline (504 / `error` event, Triton cancelled),
empty rendered prompts (422) and concurrent requests per caller (429 + Retry-After). Real gateway, real Triton."""

from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest
from rel_helpers import doc, sse_events

from gateway.limits import caller_key, default_cap
from promptops import chat
from promptops.config.users import User

CHAT = {"prompt": "support", "message": "hello there"}
ASK = [{"role": "user", "content": "hi"}]
OLIVE = User("Olive Owner", "olive@example.com", frozenset({"editor"}))


@pytest.fixture
def raw_sampling(monkeypatch):
    """Let `config` reach the echo model unchecked (`delay_ms` is not a prompt config key)."""
    monkeypatch.setattr(chat, "with_overrides", lambda prompt, overrides: {**prompt.config, **overrides})


def eventually(check, seconds=3.0):
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


@pytest.mark.parametrize("path, body, names", [
    ("/v1/chat", {**CHAT, "config": {"max_tokens": 101}}, "max_tokens 101 is over this gateway's cap of 100"),
    ("/v1/chat/completions", {"model": "support", "messages": ASK, "max_tokens": 101}, "cap of 100"),
    ("/v1/chat/completions", {"model": "support", "messages": ASK, "max_completion_tokens": 101}, "cap of 100"),
    ("/v1/chat", CHAT, "prompts/support.json (v1) sets max_tokens 256, over this gateway's cap of 100"),
    ("/prompt", doc("S ", user="hi"), "the posted prompt sets max_tokens 256, over this gateway's cap of 100"),
])
def test_max_tokens_over_the_cap_is_a_422_naming_the_cap(gateway, echo_server, path, body, names):
    client = gateway(echo_server.grpc_url, max_tokens_cap=100)
    answer = client.post(path, json=body)
    assert (answer.status_code, answer.json()["error"]["type"]) == (422, "max_tokens_over_cap"), answer.text
    assert names in answer.json()["error"]["message"] and "100" in answer.json()["error"]["fix"]
    assert client.post("/v1/chat", json={**CHAT, "config": {"max_tokens": 100}}).status_code == 200


@pytest.mark.parametrize("model_json, cap", [({"max_model_len": 512}, 512), ({"model": "x"}, 2048), (None, 2048),
                                             ("{broken", 2048)])
def test_the_default_cap_is_the_models_context(tmp_path, model_json, cap):
    if model_json is not None:
        (tmp_path / "m" / "1").mkdir(parents=True)
        text = model_json if isinstance(model_json, str) else json.dumps(model_json)
        (tmp_path / "m" / "1" / "model.json").write_text(text)
    assert default_cap("m", [tmp_path]) == cap


@pytest.mark.parametrize("stream", [False, True])
def test_past_the_deadline_a_504_or_an_error_event_and_triton_cancels(gateway, echo_server, raw_sampling, stream):
    client = gateway(echo_server.grpc_url, request_timeout_s=0.5)
    cancelled = echo_server.log_path.read_text().count("echo: cancelled")
    answer = client.post("/v1/chat", json={**CHAT, "message": "a b c d e f", "stream": stream,
                                           "config": {"delay_ms": 200}})
    if stream:  # tokens went out at 200 and 400 ms: the status line is gone, an `error` event ends the stream
        kind, data = list(sse_events(iter(answer.text.splitlines())))[-1]
        assert (answer.status_code, kind) == (200, "error")
    else:
        assert answer.status_code == 504
        data = answer.json()
    assert data["error"]["type"] == "inference_timeout" and data["error"]["fix"]
    assert eventually(lambda: echo_server.log_path.read_text().count("echo: cancelled") > cancelled)
    started = time.monotonic()
    assert client.post("/v1/chat", json=CHAT).status_code == 200 and time.monotonic() - started < 1.0


@pytest.mark.parametrize("path, body", [
    ("/v1/chat", {"prompt": "blank@1", "message": " \n\t"}),
    ("/v1/chat/completions", {"model": "blank@1", "messages": [{"role": "user", "content": "  "}]}),
    ("/prompt", {"config": {}, "user": " ", "template": "{user}"}),
])
def test_an_empty_rendered_prompt_is_a_422(repo, gateway, echo_server, path, body):
    repo.commit({"prompts/blank.json": doc("")}, "a prompt that is only the caller's message")
    answer = gateway(echo_server.grpc_url).post(path, json=body)
    assert (answer.status_code, answer.json()["error"]["type"]) == (422, "empty_prompt"), answer.text
    assert "empty prompt" in answer.json()["error"]["message"]


@pytest.mark.parametrize("path, body", [("/v1/chat", CHAT), ("/v1/chat/completions", {"model": "support", "messages": ASK}),
                                        ("/prompt", doc("S1 ", user="hi"))])  # support v1: served to anyone
def test_a_caller_over_its_limit_gets_429_while_another_is_served(gateway, echo_server, raw_sampling, path, body):
    client = gateway(echo_server.grpc_url, max_concurrent_per_caller=1)
    other = httpx.Client(base_url=client.base_url, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    slow = {**CHAT, "message": "w " * 40, "stream": True, "config": {"delay_ms": 50}}
    with client.stream("POST", "/v1/chat", json=slow) as held:  # holds this caller's one slot
        events = sse_events(held.iter_lines())  # kept: a dropped line iterator closes the connection
        assert next(events)[0] == "token"
        refused = client.post(path, json=body)
        assert (refused.status_code, refused.headers["retry-after"]) == (429, "1"), refused.text
        assert refused.json()["error"]["type"] == "too_many_requests"
        assert other.post(path, json=body).status_code == 200  # another caller (its own IP) is served
    assert eventually(lambda: client.post(path, json=body).status_code == 200)  # cancelled: the slot is back
    other.close()


def test_made_up_tokens_do_not_lift_the_limit(gateway, echo_server, raw_sampling):
    client = gateway(echo_server.grpc_url, anonymous=True, max_concurrent_per_caller=1)
    slow = {**CHAT, "message": "w " * 40, "stream": True, "config": {"delay_ms": 50}}
    with client.stream("POST", "/v1/chat", json=slow) as held:  # holds this address's one slot
        events = sse_events(held.iter_lines())
        assert next(events)[0] == "token"
        codes = [client.post("/v1/chat", json=CHAT, headers={"authorization": f"Bearer po_{secrets.token_hex(8)}"})
                 .status_code for _ in range(10)]
    assert codes == [429] * 10


@pytest.mark.parametrize("user, address, same_as", [
    (None, "10.0.0.1", (None, "10.0.0.1")),
    (OLIVE, "10.0.0.1", (OLIVE, "10.0.0.2")),
])
def test_a_caller_is_the_validated_person_else_the_address(user, address, same_as):
    assert caller_key(user, address) == caller_key(*same_as) != caller_key(None, "10.0.0.3")
