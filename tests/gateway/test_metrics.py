"""GET /metrics: Prometheus counters and histograms by prompt, version and label, one registry per app."""

from __future__ import annotations

import re


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
