"""GET /metrics: Prometheus counters and histograms by prompt, version and label, one registry per app; the
series to scale on (requests in flight, time in the Gate's line); a draining gateway."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.server import ServerThread
from gateway.settings import GatewaySettings
from promptops import chat


def sample(text: str, metric: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name == metric and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_increase_per_prompt_version(client, owner):
    labels = {"prompt": "support", "version": "2", "endpoint": "chat"}
    before = client.get("/metrics").text
    for _ in range(3):
        client.post("/v1/chat", json={"prompt": "support@2", "message": "x y"}, headers=owner)
    after = client.get("/metrics").text
    assert sample(after, "promptops_requests_total", **labels) - sample(before, "promptops_requests_total", **labels) == 3
    # The model's counts: "S2 x y" is 3 echo tokens read and 3 sent back, per request.
    assert sample(after, "promptops_completion_tokens_total", **labels) == 9
    assert sample(after, "promptops_prompt_tokens_total", **labels) == 9
    assert sample(after, "promptops_time_to_first_token_seconds_count", **labels) == 3
    assert sample(after, "promptops_request_seconds_count", **labels) == 3


def test_errors_are_counted_by_type(make_client):
    client = make_client(default_model="missing-model")
    client.post("/v1/chat", json={"prompt": "support", "message": "x"})
    text = client.get("/metrics").text
    assert sample(text, "promptops_errors_total", prompt="support", version="1", type="model_not_found") == 1


def test_each_app_has_its_own_registry(make_client):
    first, second = make_client(), make_client()
    first.post("/v1/chat", json={"prompt": "support", "message": "x"})
    assert re.search(r'promptops_requests_total\{.*prompt="support"', second.get("/metrics").text) is None


def test_series_carry_the_release_label(labelled, client):
    for ref in ("support", "support@staging", "support@2"):
        client.post("/v1/chat", json={"prompt": ref, "message": "x"})
    text = client.get("/metrics").text
    for version, label in (("1", "production"), ("2", "staging"), ("2", "")):
        assert sample(text, "promptops_requests_total", prompt="support", version=version, label=label) == 1


def value(text: str, metric: str) -> float:
    """The value of an unlabelled sample (0 when absent)."""
    for line in text.splitlines():
        name, _, number = line.partition(" ")
        if name == metric:
            return float(number)
    return 0.0


@pytest.fixture
def served(repo, prompts, echo_server, monkeypatch) -> Iterator[Callable[..., str]]:
    """`served(**settings)`: the URL of a real uvicorn gateway (streams are incremental, unlike TestClient's),
    with the echo model's `delay_ms` knob let through the prompt schema (slow streams)."""
    monkeypatch.setattr(chat, "with_overrides", lambda prompt, overrides: {**prompt.config, **overrides})
    servers: list[ServerThread] = []

    def start(**changes: Any) -> str:
        settings = GatewaySettings(repo=repo.path, triton_url=echo_server.grpc_url, default_model="echo",
                                   admin_token=None, host="127.0.0.1", store_url=None, webhook_secret=None,
                                   ui=False).with_(**changes)
        server = ServerThread(create_app(settings, ui=False))
        servers.append(server)
        return server.__enter__()

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def slow_stream(url: str, first: threading.Event, tokens: int = 20) -> None:
    body = {"prompt": "support", "message": "w " * tokens, "stream": True, "config": {"delay_ms": 50}}
    with httpx.stream("POST", f"{url}/v1/chat", json=body, timeout=30) as response:
        assert response.status_code == 200
        for _ in response.iter_lines():
            first.set()


def test_requests_in_flight_counts_running_streams(served):
    url = served()
    assert value(httpx.get(f"{url}/metrics").text, "promptops_requests_in_flight") == 0
    firsts = [threading.Event() for _ in range(3)]
    threads = [threading.Thread(target=slow_stream, args=(url, first)) for first in firsts]
    for thread in threads:
        thread.start()
    assert all(first.wait(10) for first in firsts)
    assert value(httpx.get(f"{url}/metrics").text, "promptops_requests_in_flight") == 3
    for thread in threads:
        thread.join()
    assert value(httpx.get(f"{url}/metrics").text, "promptops_requests_in_flight") == 0


def test_queue_wait_records_the_time_in_line(served):
    url = served(max_in_flight=1, max_queued=4, queue_wait_s=10)
    first = threading.Event()
    slow = threading.Thread(target=slow_stream, args=(url, first))  # ~1 s holding the one slot
    slow.start()
    assert first.wait(10)
    waited = time.perf_counter()
    answer = httpx.post(f"{url}/v1/chat", json={"prompt": "support", "message": "x"}, timeout=30)
    waited = time.perf_counter() - waited
    slow.join()
    assert answer.status_code == 200
    text = httpx.get(f"{url}/metrics").text
    assert value(text, "promptops_queue_wait_seconds_count") == 2
    assert sample(text, "promptops_queue_wait_seconds_bucket", le="0.001") == 1  # the first did not wait
    assert 0.3 < value(text, "promptops_queue_wait_seconds_sum") <= waited + 0.05


def test_a_draining_gateway_refuses_generations_and_readiness(client):
    service = client.app.state.service
    service.begin_drain()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    refused = client.post("/v1/chat", json={"prompt": "support", "message": "x"})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "draining" and refused.json()["error"]["retry_after_s"] == 1
    assert value(client.get("/metrics").text, "promptops_requests_in_flight") == 0
