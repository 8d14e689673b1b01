"""The official `openai` client against /v1/chat/completions (model = prompt reference)."""

from __future__ import annotations

import openai
import pytest

from gateway.app import create_app
from gateway.server import ServerThread
from gateway.settings import GatewaySettings


@pytest.fixture
def oai(repo, prompts, echo_server):
    settings = GatewaySettings(repo=repo.path, triton_url=echo_server.grpc_url, default_model="echo",
                               admin_token=None, serve_drafts=False, store_url=None)
    with ServerThread(create_app(settings, ui=False)) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
            yield client


def test_completion(oai):
    result = oai.chat.completions.create(model="support", messages=[
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"}])
    assert result.choices[0].message.content == "S1 user: first\nassistant: ok\nsecond"
    assert (result.model, result.choices[0].finish_reason, result.usage.completion_tokens) == ("support@1", "stop", 6)


def test_streaming_completion_with_usage(oai):
    stream = oai.chat.completions.create(model="support@2", messages=[{"role": "user", "content": "a b"}],
                                         stream=True, stream_options={"include_usage": True}, max_tokens=2)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "S2 a "
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 2


@pytest.mark.parametrize("model, error", [("fresh", openai.NotFoundError), ("Nope!", openai.BadRequestError)])
def test_errors_reach_the_client(oai, model, error):
    with pytest.raises(error, match="fresh|invalid prompt name"):
        oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])


def test_models_lists_approved_prompts(oai):
    assert [m.id for m in oai.models.list()] == ["support"]
