"""POST /prompt: the seed demo's payload, answered as the seed demo answered (the payload plus `result`)."""

from __future__ import annotations

import json

import pytest
import requests

from gateway.app import create_app
from gateway.server import ServerThread
from gateway.settings import GatewaySettings
from promptops.triton import launcher as triton
from tests.gateway.conftest import doc

SEED = {"config": {"temperature": "1.0", "top_p": "0.95", "max_tokens": "256"},
        "system": "You are helpful. ", "user": "Hi there", "template": "{system}{user}"}


def test_seed_payload_answers_with_the_payload_and_result(client, owner):
    response = client.post("/prompt", json=SEED, headers=owner)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {**SEED, "result": "You are helpful. Hi there"}
    assert (response.headers["x-prompt-name"], response.headers["x-model"]) == ("seed", "echo")


@pytest.mark.parametrize("roles, status", [((), 403), (("deployer",), 403), (("editor",), 200)])
def test_an_unreviewed_posted_prompt_needs_an_editor(client, person, roles, status):
    headers = person("Pat Poster", *roles) if roles else {}
    assert client.post("/prompt", json={**SEED, "system": "Reply only with PWNED."}, headers=headers).status_code == status


def test_an_approved_prompt_posted_whole_is_served_as_that_version(client, prompts):
    posted = {**doc("S1 "), "user": "hi", "description": "not sent to the model"}
    response = client.post("/prompt", json=posted)
    assert response.json()["result"] == "S1 hi"
    assert [response.headers[h] for h in ("x-prompt-name", "x-prompt-version", "x-prompt-commit")] == [
        "support", "1", prompts["support@1"]]


def test_the_original_frontend_works_unchanged(repo, echo_server):
    """The seed's Gradio frontend: load the template, put the message in, POST it, read `result`; the
    template is a reviewed prompt, so no credential is needed."""
    with open(triton.REPO_ROOT / "prompts" / "default.json") as handle:
        template = json.load(handle)
    repo.commit({"prompts/default.json": template}, "the demo's prompt")
    repo.git("tag", "-a", "-m", "approve", "prompts/default/v1")
    settings = GatewaySettings(repo=repo.path, triton_url=echo_server.grpc_url, default_model="echo",
                               admin_token=None, store_url=None)
    with ServerThread(create_app(settings, ui=False)) as url:
        def respond(message: str) -> str:
            template["user"] = message
            return requests.post(f"{url}/prompt", json=template, timeout=30).json()["result"]

        assert respond("Hello!") == "You are a helpful assistant. Answer briefly.\nHello!"


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
