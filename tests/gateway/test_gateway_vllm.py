"""One request through the real model: SmolLM2-135M in vLLM inside Triton, streamed by the gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import GatewaySettings

CHAT = json.loads((Path(__file__).resolve().parents[2] / "prompts" / "chat.json").read_text())


@pytest.mark.vllm
def test_real_model_streams_through_the_gateway(repo, vllm_server):
    repo.commit({"prompts/chat.json": CHAT}, "chat v1")
    repo.git("tag", "-a", "-m", "ok", "prompts/chat/v1")
    settings = GatewaySettings(repo=repo.path, triton_url=vllm_server.grpc_url, default_model="smollm2-135m",
                               admin_token=None, serve_drafts=False, store_url=None)
    with TestClient(create_app(settings, ui=False), base_url="http://127.0.0.1") as client:
        with client.stream("POST", "/v1/chat", json={"prompt": "chat", "message": "What is the capital of Germany?",
                                                     "stream": True}) as response:
            assert response.headers["x-model"] == "smollm2-135m"
            text = response.read().decode()
    tokens = [json.loads(line[6:])["text"] for line in text.splitlines()
              if line.startswith("data: ") and '"text"' in line]
    assert len(tokens) > 1 and "Berlin" in "".join(tokens)
    assert "event: done" in text
