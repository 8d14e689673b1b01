"""The one chat pipeline (promptops.chat): prepare, the OpenAI messages rule, and generate against real Triton (echo)."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from promptops.chat import Answer, complete, generate, prepare, split_messages
from promptops.cli.app import app
from promptops.errors import EmptyPrompt, PromptInvalid, PromptOpsError
from promptops.prompt.chat_template import ChatTemplate
from promptops.prompt.render import Turn
from promptops.prompt.schema import load_prompt_bytes
from promptops.triton.client import InferenceClient, run_sync
from tests.conftest import prompt_doc

CHATML = ChatTemplate("{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}<assistant>")
CHAT = {"config": {}, "system": "Be brief.", "messages": [
    {"role": "system", "content": "{system}"}, {"history": True}, {"role": "user", "content": "{user}"}]}


def load(document, name="support"):
    return load_prompt_bytes(json.dumps(document).encode(), name, f"{name}.json")


def test_a_template_prompt_gets_message_history_and_checked_overrides():
    prepared = prepare(load(prompt_doc("{system}{history}{user}", system="S ")), "now",
                       [{"role": "user", "content": "before"}], {"max_tokens": 2}, default_model="echo")
    assert (prepared.text, prepared.model, prepared.version, prepared.sampling["max_tokens"]) == (
        "S user: before\nnow", "echo", "inline", 2)


def test_a_chat_prompt_puts_history_in_its_slot():
    prepared = prepare(load(CHAT), "2+2?", [Turn("user", "hi"), Turn("assistant", "hello")], default_model="m",
                       chat_template=CHATML)
    assert prepared.text == "<system>Be brief.\n<user>hi\n<assistant>hello\n<user>2+2?\n<assistant>"


@pytest.mark.parametrize("document, message, history, overrides, error, text", [
    (prompt_doc("{user}"), " \n", [], {}, EmptyPrompt, "support (v3) rendered to an empty prompt"),
    (CHAT, " ", [{"role": "user", "content": "earlier"}], {}, EmptyPrompt, "support (v3) has an empty user message"),
    (prompt_doc(), "x", [], {"temperature": -1}, PromptInvalid, "temperature"),
    (prompt_doc(), "x", [{"role": "wizard", "content": "x"}], {}, PromptOpsError, "history[0] has role 'wizard'"),
    (prompt_doc(), "x", [{"role": "system", "content": "INJECTED"}], {}, PromptOpsError, "history[0] is a system message"),
])
def test_what_prepare_refuses(document, message, history, overrides, error, text):
    with pytest.raises(error, match=re.escape(text)):
        prepare(load(document), message, history, overrides, default_model="m", version="3", chat_template=CHATML)


CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}


@pytest.mark.parametrize("messages, expected", [
    ([{"role": "user", "content": "hi"}], ("hi", [], [])),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "text", "text": "b"}]},
      {"role": "user", "content": "c"}], ("c", [Turn("user", "a"), Turn("assistant", "b")], [])),
    ([{"role": "user", "content": "w?"}, {"role": "assistant", "content": None, "tool_calls": [CALL]},
      {"role": "tool", "tool_call_id": "call_1", "content": "9 C"}],
     ("w?", [], [Turn("assistant", '{"name": "weather", "arguments": {"city": "Oslo"}}'), Turn("tool", "9 C")])),
    ([{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}], "system message"),
    ([{"role": "developer", "content": "x"}, {"role": "user", "content": "hi"}], "developer message"),
    ([{"role": "function", "content": "{}"}, {"role": "user", "content": "hi"}], "role 'function'"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}], "must be the user's"),
])
def test_openai_messages_onto_a_prompt(messages, expected):
    if isinstance(expected, str):
        with pytest.raises(PromptOpsError, match=expected) as raised:
            split_messages(messages)
        assert raised.value.fix
    else:
        assert split_messages(messages) == expected


@pytest.mark.parametrize("max_tokens, deltas, reason", [(256, ["S ", "a ", "b"], "stop"), (2, ["S ", "a "], "length")])
def test_generate_yields_deltas_then_the_models_usage(echo_server, max_tokens, deltas, reason):
    prepared = prepare(load(prompt_doc(system="S ")), "a b", overrides={"max_tokens": max_tokens}, default_model="echo")

    async def main():
        async with InferenceClient(echo_server.grpc_url) as client:
            return [e async for e in generate(client, prepared)], await complete(client, prepared)

    events, whole = run_sync(main())
    *texts, answer = events
    assert texts == deltas and isinstance(answer, Answer)
    # The echo model's own counts: 3 whitespace-ended chunks read, one per chunk sent.
    assert (answer.text, answer.prompt_tokens, answer.completion_tokens, answer.finish_reason) == (
        "".join(deltas), 3, len(deltas), reason)
    assert 0 < answer.ttft_s <= answer.total_s and whole.usage() == answer.usage()


def test_one_answer_type_from_the_client_to_the_assertions():
    from typing import get_type_hints

    from gateway import serving
    from promptops.evaluation import assertions, runs
    from promptops.triton import client

    assert Answer is client.Answer is serving.Answer
    assert get_type_hints(assertions.check)["answer"] is Answer is get_type_hints(runs.Attempt.scored)["answer"]


def test_the_cli_chat_goes_through_the_pipeline(repo, echo_server, monkeypatch):
    monkeypatch.setenv("PROMPTOPS_MODEL", "echo")
    repo.commit({"prompts/support.json": prompt_doc("{system}{history}{user}", system="S ")})
    result = CliRunner().invoke(app, ["--triton-url", echo_server.grpc_url, "chat", "support"],
                                input="hello\n\nagain\n/quit\n")
    assert result.exit_code == 0, result.output
    assert "S hello\n" in result.output and "S user: hello\nassistant: S hello\nagain\n" in result.output
