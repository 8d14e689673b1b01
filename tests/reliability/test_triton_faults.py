"""Triton faults with a real server we own: down at start, SIGKILL mid-stream, restart, hung or slow.

The tests share one module-scoped server and run in file order (down -> up -> killed -> restarted).
"""

from __future__ import annotations

import signal
import time

import pytest
from rel_helpers import sse_events

from promptops import chat

CHAT = {"prompt": "support", "message": "hello there"}


def test_triton_down_at_start_gateway_up_but_unready(own_triton, gateway):
    own_triton.kill()
    client = gateway(own_triton.url)
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["checks"]["triton"]) == (503, False)
    assert own_triton.url in ready.json()["error"]["message"]
    for stream in (False, True):
        answer = client.post("/v1/chat", json={**CHAT, "stream": stream})
        assert (answer.status_code, answer.json()["error"]["type"]) == (503, "server_unavailable")
        assert "not reachable" in answer.json()["error"]["message"]
    assert client.get("/healthz").status_code == 200


def test_triton_started_later_is_used_without_restarting_the_gateway(own_triton, gateway):
    client = gateway(own_triton.url)
    assert client.post("/v1/chat", json=CHAT).status_code == 503
    own_triton.start()
    assert client.get("/readyz").status_code == 200
    assert client.post("/v1/chat", json=CHAT).json()["text"] == "S1 hello there"


@pytest.fixture
def raw_sampling(monkeypatch):
    """Let `config` reach the echo model unchecked (`delay_ms` is not a prompt config key)."""
    monkeypatch.setattr(chat, "with_overrides", lambda prompt, overrides: {**prompt.config, **overrides})


def test_sigkill_mid_stream_gives_an_error_event_fast_then_restart_recovers(own_triton, gateway, raw_sampling):
    own_triton.start()
    client = gateway(own_triton.url, request_timeout_s=30)
    body = {**CHAT, "message": "word " * 200, "stream": True, "config": {"delay_ms": 20}}
    with client.stream("POST", "/v1/chat", json=body) as response:
        events = sse_events(response.iter_lines())
        assert [next(events)[0] for _ in range(3)] == ["token"] * 3
        own_triton.kill()
        killed = time.monotonic()
        rest = list(events)  # ends: no stuck request
    latency = time.monotonic() - killed
    print(f"\nkill-to-error-event latency: {latency * 1000:.0f} ms")
    assert rest[-1][0] == "error" and rest[-1][1]["error"]["type"] in ("server_unavailable", "model_error")
    assert latency < 2.0
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 503
    own_triton.start()
    answer = client.post("/v1/chat", json=CHAT)
    assert answer.json().get("text") == "S1 hello there", answer.text
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("how", ["delay_ms", "SIGSTOP"])
def test_slow_or_hung_triton_is_a_clear_504_within_the_timeout(own_triton, gateway, raw_sampling, how):
    own_triton.start()
    client = gateway(own_triton.url, request_timeout_s=1.0)
    assert client.post("/v1/chat", json=CHAT).status_code == 200  # connected: then it hangs or crawls
    if how == "SIGSTOP":
        own_triton.signal(signal.SIGSTOP)
    started = time.monotonic()
    try:
        answer = client.post("/v1/chat", json={**CHAT, "config": {"delay_ms": 3000 if how == "delay_ms" else 0}})
    finally:
        if how == "SIGSTOP":
            own_triton.signal(signal.SIGCONT)
    assert (answer.status_code, answer.json()["error"]["type"]) == (504, "inference_timeout"), answer.text
    assert "within 1.0 s" in answer.json()["error"]["message"] and time.monotonic() - started < 3
    assert client.post("/v1/chat", json=CHAT).status_code == 200
