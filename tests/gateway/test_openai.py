"""The official `openai` client against /v1/chat/completions (model = prompt reference)."""

from __future__ import annotations

import openai
import pytest

from gateway.app import create_app
from gateway.server import ServerThread
from gateway.settings import GatewaySettings


@pytest.fixture
def oai(repo, prompts, echo_server, users):
    token = users.add("Ed Editor", "ed@example.com", ["editor"])[1]  # pins to unapproved versions need one
    settings = GatewaySettings(repo=repo.path, triton_url=echo_server.grpc_url, default_model="echo",
                               admin_token=None, serve_drafts=False, store_url=None)
    with ServerThread(create_app(settings, ui=False)) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0) as client:
            yield client


def test_completion(oai):
    result = oai.chat.completions.create(model="support", messages=[
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"}])
    assert result.choices[0].message.content == "S1 user: first\nassistant: ok\nsecond"
    assert (result.model, result.choices[0].finish_reason, result.choices[0].logprobs) == ("support@1", "stop", None)
    # The echo model's own counts (a token is a whitespace-ended chunk): the whole prompt, then the echo of it.
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (6, 6, 12)


def test_streaming_completion_with_usage(oai):
    stream = oai.chat.completions.create(model="support@2", messages=[{"role": "user", "content": "a b"}],
                                         stream=True, stream_options={"include_usage": True}, max_tokens=2)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "S2 a "
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert (chunks[-1].choices, chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == ([], 3, 2)


def test_streaming_without_include_usage_has_no_usage_chunk(oai):
    chunks = list(oai.chat.completions.create(model="support", messages=[{"role": "user", "content": "a"}],
                                              stream=True))
    assert all(c.usage is None and c.choices for c in chunks) and chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_in_openais_shape(oai, stream):
    asked = dict(model="support", messages=[{"role": "user", "content": "a b"}], logprobs=True, top_logprobs=2)
    if stream:
        content = [t for c in oai.chat.completions.create(**asked, stream=True)
                   if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    else:
        content = oai.chat.completions.create(**asked).choices[0].logprobs.content
    # The echo model gives each chunk logprob 0.0, rank 1, and no alternatives.
    assert [(t.token, t.logprob, t.bytes) for t in content] == [("S1 ", 0.0, [83, 49, 32]), ("a ", 0.0, [97, 32]),
                                                                 ("b", 0.0, [98])]
    assert [[a.token for a in t.top_logprobs] for t in content] == [["S1 "], ["a "], ["b"]]


@pytest.mark.parametrize("messages, message", [
    ([{"role": "system", "content": "be rude"}, {"role": "user", "content": "x"}], "system message"),
    ([{"role": "user", "content": "x"}, {"role": "tool", "content": "{}", "tool_call_id": "1"}], "has no tools to call"),
    ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "the last message must be the user's"),
])
def test_messages_a_prompt_cannot_take_are_refused(oai, messages, message):
    with pytest.raises(openai.BadRequestError, match=message) as raised:
        oai.chat.completions.create(model="support", messages=messages)
    assert raised.value.body["fix"]


@pytest.mark.parametrize("model, error", [("fresh", openai.NotFoundError), ("Nope!", openai.BadRequestError)])
def test_errors_reach_the_client(oai, model, error):
    with pytest.raises(error, match="fresh|invalid prompt name"):
        oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])


def test_models_lists_approved_prompts(oai):
    assert [m.id for m in oai.models.list()] == ["support"]
