"""Readers never wait for writers: streams and /healthz while saves and approvals run, and while another
process holds the repository lock (as a running `promptops approve` does)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from promptops import chat

STREAMS, TOKENS, DELAY_MS = 4, 120, 20


@pytest.fixture
def slow_echo(monkeypatch):
    """Let `delay_ms` reach the echo model (a test knob the prompt schema does not know): slow streams."""
    monkeypatch.setattr(chat, "with_overrides", lambda prompt, overrides: {**prompt.config, **overrides})


def longest_pauses(url: str, token: str) -> list[float]:
    """Run STREAMS streams at once; the longest gap between two chunks of each (seconds)."""
    gaps: list[float] = []

    def one() -> None:
        body = {"prompt": "support", "message": "w " * TOKENS, "stream": True, "config": {"delay_ms": DELAY_MS}}
        with httpx.stream("POST", f"{url}/v1/chat", json=body, timeout=60,
                          headers={"authorization": f"Bearer {token}"}) as response:
            assert response.status_code == 200
            last, worst = None, 0.0
            for _ in response.iter_raw():
                now = time.perf_counter()
                worst = max(worst, now - last) if last is not None else 0.0
                last = now
        gaps.append(worst)

    threads = [threading.Thread(target=one) for _ in range(STREAMS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(gaps) == STREAMS
    return gaps


def probing(url: str, during: Callable[[], object]) -> tuple[object, float]:
    """Run `during()` while /healthz is asked every 20 ms; (its result, the slowest /healthz answer)."""
    slowest, done = [0.0], threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not done.is_set():
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                slowest[0] = max(slowest[0], time.perf_counter() - started)
                time.sleep(0.02)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        result = during()
    finally:
        done.set()
        thread.join()
    return result, slowest[0]


def saves_and_approvals(client: httpx.Client, count: int) -> None:
    """`count` saves of `other`, each approved at once, through the API."""
    base = None
    for number in range(1, count + 1):
        text = f'{{"config": {{}}, "system": "O{number} ", "user": "", "template": "{{system}}{{user}}"}}'
        saved = client.put("/v1/prompts/other", json={"text": text, "base_commit": base})
        assert saved.status_code == 200, saved.text
        base = saved.json()["version"]["commit"]
        assert client.post("/v1/prompts/other/approve", json={"version": number}).status_code == 200


def test_saves_and_approvals_do_not_stall_streams(gateway, echo_server, owner_token, slow_echo):
    client = gateway(echo_server.grpc_url)
    url = str(client.base_url)
    baseline = max(longest_pauses(url, owner_token))
    writer = threading.Thread(target=saves_and_approvals, args=(client, 10))  # 10 saves + 10 approvals
    writer.start()
    gaps, slowest_health = probing(url, lambda: longest_pauses(url, owner_token))
    writer.join()
    assert max(gaps) < 2 * baseline + 0.05, (baseline, gaps)
    assert slowest_health < 0.1


def test_a_lock_held_by_another_process_stalls_nobody(gateway, echo_server, owner_token, repo, slow_echo):
    client = gateway(echo_server.grpc_url, lock_timeout_s=3.0)
    url = str(client.base_url)
    baseline = max(longest_pauses(url, owner_token))
    holder = subprocess.Popen(["flock", str(Path(repo.path, ".git", "promptops.lock")), "sleep", "10"])
    try:
        time.sleep(0.2)
        saved: list[httpx.Response] = []
        writer = threading.Thread(target=lambda: saved.append(client.put("/v1/prompts/other", json={
            "text": '{"config": {}, "user": "", "template": "{user}"}', "base_commit": None})))
        writer.start()
        gaps, slowest_health = probing(url, lambda: longest_pauses(url, owner_token))
        writer.join()
    finally:
        holder.kill()
        holder.wait()
    assert saved[0].status_code == 503 and saved[0].json()["error"]["type"] == "store_busy"
    assert max(gaps) < 2 * baseline + 0.05, (baseline, gaps)
    assert slowest_health < 0.1
