"""The output contract at the gateway's doors, with the echo model (it answers the last JSON object in its
prompt under a JSON constraint, so a test plants the answer it wants in the message)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from gateway.app import create_app
from gateway.server import ServerThread
from gateway.settings import GatewaySettings
from tests.conftest import ECHO_REPOSITORY

TICKET = {"type": "object", "properties": {"title": {"type": "string"}, "priority": {"enum": ["low", "high"]}},
          "required": ["title", "priority"], "additionalProperties": False}
WEATHER = {"type": "function", "function": {"name": "weather", "description": "Weather in a city.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}


def chat_doc(**contract: Any) -> dict[str, Any]:
    return {"config": {"max_tokens": 200}, "messages": [{"role": "system", "content": "Help."},
                                                        {"role": "user", "content": "{user}"}], **contract}


@pytest.fixture
def contracts(repo: Any) -> None:
    """ticket v1 (a JSON schema), tools v1 (two tools), plain v1 (no contract): all approved."""
    fmt = {"type": "json_schema", "json_schema": {"name": "ticket", "schema": TICKET, "strict": True}}
    for name, document in {"ticket": chat_doc(response_format=fmt), "tools": chat_doc(tools=[WEATHER, TIME]),
                           "plain": chat_doc()}.items():
        repo.commit({f"prompts/{name}.json": document}, f"{name} v1")
        repo.git("tag", "-a", "-m", "approve", f"prompts/{name}/v1")


@pytest.fixture
def oai(repo, contracts, echo_server, monkeypatch):
    monkeypatch.setenv("PROMPTOPS_MODEL_REPOSITORY", str(ECHO_REPOSITORY))  # echo's chat template
    settings = GatewaySettings(repo=repo.path, triton_url=echo_server.grpc_url, default_model="echo",
                               admin_token=None, serve_drafts=False, store_url=None)
    with ServerThread(create_app(settings, ui=False)) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0) as client:
            client.base = url
            yield client


@pytest.mark.parametrize("planted, valid", [('{"title": "Printer", "priority": "high"}', True),
                                            ('{"title": "Printer"}', False)])
def test_v1_chat_answers_the_parsed_object_and_whether_it_validates(oai, planted, valid):
    import httpx

    body = httpx.post(f"{oai.base}/v1/chat", json={"prompt": "ticket", "message": f"file {planted}"}).json()
    assert (body["text"], body["parsed"], body["valid"]) == (planted, json.loads(planted), valid)
    assert bool(body["errors"]) is not valid and ("'priority' is a required property" in str(body["errors"])) is not valid


def test_openai_content_is_the_json_text(oai):
    planted = '{"title": "Disk", "priority": "low"}'
    result = oai.chat.completions.create(model="ticket", messages=[{"role": "user", "content": planted}])
    assert json.loads(result.choices[0].message.content) == json.loads(planted)


@pytest.mark.parametrize("model, response_format, error", [
    ("ticket", {"type": "json_object"}, "cannot loosen or replace"),
    ("ticket", {"type": "json_schema", "json_schema": {"name": "ticket", "schema": {"type": "object"}}},
     "cannot loosen or replace"),
    ("tools", None, None),
])
def test_a_caller_cannot_loosen_the_prompts_format(oai, model, response_format, error):
    asked = {"response_format": response_format} if response_format else {"tools": [WEATHER]}
    with pytest.raises(openai.BadRequestError, match=error or "differ from the prompt's reviewed tools") as raised:
        oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], **asked)
    assert raised.value.body["fix"]


def test_a_callers_format_applies_where_the_prompt_declares_none(oai):
    asked = {"type": "json_schema", "json_schema": {"name": "t", "schema": TICKET}}
    result = oai.chat.completions.create(model="plain", messages=[{"role": "user", "content": 'x {"a": 1} y'}],
                                         response_format=asked)
    assert result.choices[0].message.content == '{"a": 1}'  # the echo's pick; vLLM would have enforced TICKET


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_comes_back_as_openai_tool_calls(oai, stream):
    call = '{"name": "weather", "arguments": {"city": "Oslo"}}'
    asked = {"model": "tools", "messages": [{"role": "user", "content": f"weather? {call}"}]}
    if stream:
        chunks = [c for c in oai.chat.completions.create(**asked, stream=True) if c.choices]
        calls, finish = chunks[-2].choices[0].delta.tool_calls, chunks[-1].choices[0].finish_reason
    else:
        choice = oai.chat.completions.create(**asked).choices[0]
        calls, finish = choice.message.tool_calls, choice.finish_reason
    assert (calls[0].function.name, json.loads(calls[0].function.arguments), finish) == ("weather", {"city": "Oslo"},
                                                                                         "tool_calls")


def test_a_tool_result_continues_the_conversation(oai):
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    result = oai.chat.completions.create(model="tools", messages=[
        {"role": "user", "content": "weather in Oslo?"}, {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"content": "It is 9 C in Oslo."}'}])
    assert (result.choices[0].message.content, result.choices[0].finish_reason) == ("It is 9 C in Oslo.", "stop")


@pytest.mark.parametrize("model, asked, message", [
    ("plain", {"response_format": {"type": "json_schema"}}, "'json_schema' is a required property"),
    ("plain", {"response_format": {"type": "regex", "regex": "(a|a)*b"}}, "a prompt file's option"),
    ("plain", {"tools": [WEATHER]}, "tools come only from the prompt file"),
    ("ticket", {"tools": [WEATHER], "tool_choice": "required"}, "tools come only from the prompt file"),
    ("tools", {"tool_choice": {"type": "function", "function": "weather"}}, "is not of type 'object'"),
    ("tools", {"tool_choice": "foo"}, "'foo' is not one of"),
])
def test_what_a_caller_may_not_send(oai, model, asked, message):
    with pytest.raises(openai.BadRequestError, match=message):
        oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], **asked)


def test_a_final_answer_after_a_tool_result_with_tool_choice_none(oai):
    call = {"id": "c1", "type": "function", "function": {"name": "time", "arguments": '{"zone": "UTC"}'}}
    result = oai.chat.completions.create(model="tools", tool_choice="none", messages=[
        {"role": "user", "content": "time?"}, {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "noon"}])
    assert result.choices[0].finish_reason == "stop" and "Tool result: noon" in result.choices[0].message.content


def test_v1_chat_config_cannot_replace_the_contract(oai):
    import httpx

    body = {"prompt": "ticket", "message": "x", "config": {"structured_outputs": {"regex": ".*"}}}
    answer = httpx.post(f"{oai.base}/v1/chat", json=body)
    assert (answer.status_code, answer.json()["error"]["type"]) == (400, "contract_refused")
