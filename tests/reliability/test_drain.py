"""Draining (gateway/drain.py), with real processes: `promptops serve --triton-url` against the shared echo
Triton, real SIGTERMs.

- One replica with four slow streams in flight: SIGTERM turns /readyz to 503 at once, a new generation
  gets 503 `draining` with Retry-After, the port stays open for the delay, all four streams end with
  their `done` event, the process exits 0 and leaves no child behind.
- Two replicas behind a round-robin client that skips a replica answering 503 (or not listening): a
  rolling restart (SIGTERM one, start it again, then the other) loses no request.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from rel_helpers import sse_events

from promptops.triton import launcher as triton

SLOW_SERVE = Path(__file__).with_name("slow_serve.py")  # `promptops` letting the echo model's delay_ms through
TOKENS, DELAY_MS = 40, 75  # a slow stream: ~3 s


class Replica:
    """One `promptops serve --triton-url` process on a fixed port, started (and restarted) by the test."""

    def __init__(self, repo: Path, triton_url: str, logs: Path, *, delay_s: float, grace_s: float) -> None:
        self.port = triton.free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, str(SLOW_SERVE), "serve", "--no-ui", "--port", str(self.port),
                     "--triton-url", triton_url]
        self.env = {**os.environ, "PROMPTOPS_MODEL": "echo", "PROMPTOPS_REPO": str(repo),
                    "PROMPTOPS_DRAIN_DELAY": str(delay_s), "PROMPTOPS_DRAIN_GRACE": str(grace_s)}
        self.logs = logs
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 60) -> subprocess.Popen[bytes]:
        self.starts += 1
        with open(self.logs / f"replica-{self.port}-{self.starts}.log", "wb") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return self.process
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica on {self.port} not ready: {self.log()}")

    def log(self) -> str:
        return (self.logs / f"replica-{self.port}-{self.starts}.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def replicas(repo, prompts, echo_server, tmp_path):
    made: list[Replica] = []

    def make(**drain: float) -> Replica:
        replica = Replica(repo.path, echo_server.grpc_url, tmp_path, **drain)
        made.append(replica)
        return replica

    yield make
    for replica in made:
        replica.stop()


def stream(url: str, message: str, config: dict[str, Any] | None = None,
           started: threading.Event | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The events of one streamed /v1/chat answer (setting `started` at the first)."""
    body = {"prompt": "support", "message": message, "stream": True, "config": config or {}}
    events = []
    with httpx.stream("POST", f"{url}/v1/chat", json=body, timeout=60) as response:
        assert response.status_code == 200, response.read()
        for event in sse_events(response.iter_lines()):
            events.append(event)
            if started is not None:
                started.set()
    return events


def test_sigterm_drains_streams_then_exits_0(replicas):
    replica = replicas(delay_s=1.5, grace_s=20)
    process = replica.start()
    message = "w " * TOKENS
    results: list[list[tuple[str, dict[str, Any]]]] = []
    started = [threading.Event() for _ in range(4)]
    threads = [threading.Thread(target=lambda s=s: results.append(stream(replica.url, message,
                                                                          {"delay_ms": DELAY_MS}, s)))
               for s in started]
    for thread in threads:
        thread.start()
    assert all(s.wait(30) for s in started)
    children = psutil.Process(process.pid).children(recursive=True)

    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    ready = None
    while time.monotonic() - signalled < 0.5:
        ready = httpx.get(f"{replica.url}/readyz", timeout=5)
        if ready.status_code == 503:
            break
        time.sleep(0.02)
    assert ready is not None and ready.status_code == 503 and ready.json()["status"] == "draining"
    refused = httpx.post(f"{replica.url}/v1/chat", json={"prompt": "support", "message": "hi"}, timeout=10)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1" and refused.json()["error"]["type"] == "draining"
    time.sleep(max(0.0, 1.0 - (time.monotonic() - signalled)))
    assert httpx.get(f"{replica.url}/healthz", timeout=5).status_code == 200  # still listening in the delay

    for thread in threads:
        thread.join(timeout=60)
    assert process.wait(timeout=30) == 0, replica.log()
    assert time.monotonic() - signalled >= 1.5  # the delay was kept
    assert len(results) == 4
    for events in results:
        kinds = [kind for kind, _ in events]
        assert kinds[-1] == "done" and "error" not in kinds, events
        text = "".join(data.get("text", "") for kind, data in events if kind != "done")
        assert text == "S1 " + message, text
    left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert left == []


class RoundRobin:
    """A client that sends each request to the next replica, and to the one after when a replica answers
    503 or does not listen (what a load balancer that retries does)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.next = 0
        self.answered = 0
        self.retried = 0
        self.lost: list[str] = []

    def send(self, message: str, deadline_s: float = 15) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            url = self.urls[self.next % len(self.urls)]
            self.next += 1
            try:
                events = stream_or_none(url, message)
            except httpx.TransportError:  # not listening (stopped, or starting again)
                events = None
            if events is not None:
                kinds = [kind for kind, _ in events]
                if kinds[-1:] != ["done"]:
                    self.lost.append(f"{url}: {events}")
                else:
                    self.answered += 1
                return
            self.retried += 1
            time.sleep(0.01)
        self.lost.append(f"{message}: no replica answered within {deadline_s} s")


def stream_or_none(url: str, message: str) -> list[tuple[str, dict[str, Any]]] | None:
    """The events of one streamed answer, or None when the replica refused it with 503 (draining)."""
    body = {"prompt": "support", "message": message, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat", json=body, timeout=30) as response:
        if response.status_code == 503:
            return None
        assert response.status_code == 200, response.read()
        return list(sse_events(response.iter_lines()))


def test_a_rolling_restart_loses_no_request(replicas):
    first, second = replicas(delay_s=1, grace_s=10), replicas(delay_s=1, grace_s=10)
    first.start()
    second.start()
    client = RoundRobin([first.url, second.url])
    rolling = threading.Event()

    def keep_sending() -> None:
        count = 0
        while (count < 200 or rolling.is_set()) and count < 5000:
            client.send(f"request {count}")
            count += 1
            time.sleep(0.03)

    rolling.set()
    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        for replica in (first, second):
            time.sleep(0.5)
            assert replica.process is not None
            replica.process.send_signal(signal.SIGTERM)
            assert replica.process.wait(timeout=30) == 0, replica.log()
            replica.start()
    finally:
        rolling.clear()
        sender.join(timeout=120)
    assert client.lost == []
    assert client.answered >= 200 and client.retried > 0


def test_closing_the_gate_refuses_those_in_line_and_after():
    import asyncio

    from gateway.errors import Draining
    from gateway.limits import Gate

    async def scenario() -> None:
        gate = Gate(limit=1, queued=4, wait_s=10)
        await gate.enter()  # the one slot: a stream in flight
        waiting = asyncio.ensure_future(gate.enter())
        await asyncio.sleep(0.01)
        gate.close()
        with pytest.raises(Draining):
            await waiting
        with pytest.raises(Draining):
            await gate.enter()
        gate.leave()  # the stream in flight ends: its slot goes back to the pool, nobody is handed it
        assert gate.active == 0

    asyncio.run(scenario())
