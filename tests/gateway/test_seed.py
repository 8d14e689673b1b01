"""POST /prompt: the seed demo's payload, answered with the generated text."""

from __future__ import annotations

import json

import pytest


def test_seed_payload_answers_with_generated_text(client):
    payload = {"config": {"temperature": "1.0", "top_p": "0.95", "max_tokens": "256"},
               "system": "You are helpful. ", "user": "Hi there", "template": "{system}{user}"}
    response = client.post("/prompt", json=payload)
    assert response.status_code == 200
    assert response.text == "You are helpful. Hi there"
    assert (response.headers["x-prompt-name"], response.headers["x-model"]) == ("seed", "echo")


@pytest.mark.parametrize("body, message", [
    ('{"config": {}, "system": "", "user": "x"}', "'template' is required"),
    ('{"config": {"top_p": "2"}, "user": "x", "template": "{user}"}', "$.config.top_p must be"),
    ('{"config": {}, "user": "x", "template": "{nope}"}', "unknown placeholder {nope}"),
    ('{"config": {}, "user": "x", "template": "{user.__class__}"}', "attribute access"),
    ('{"config": {}, "user": "x"', "invalid JSON"),
    ('[1, 2]', "must be a JSON object"),
])
def test_seed_payload_is_validated_by_the_core(client, body, message):
    response = client.post("/prompt", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert message in json.dumps(response.json()["error"])
