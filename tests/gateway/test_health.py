"""Liveness and readiness."""

from __future__ import annotations

import pytest

from promptops.triton import launcher as triton


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_when_everything_is_up(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["triton"] and response.json()["checks"]["model"]


@pytest.mark.parametrize("change, reason", [
    ({"default_model": "nope"}, "model 'nope' is not loaded"),
    ({"triton_url": f"127.0.0.1:{triton.free_ports(1)[0]}"}, "is not ready"),
])
def test_readyz_says_why_it_is_not_ready(make_client, change, reason):
    response = make_client(**change).get("/readyz")
    assert response.status_code == 503
    assert reason in response.json()["error"]["message"]
