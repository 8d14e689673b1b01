"""The output contract enforced by the real model server: SmolLM2-135M through the CPU vllm backend."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from gateway.app import create_app
from gateway.server import ServerThread
from gateway.settings import GatewaySettings
from promptops.prompt.outputs import validation_errors
from tests.conftest import GIT_ENV, GitRepo
from tests.gateway.test_outputs import TIME, WEATHER

pytestmark = pytest.mark.vllm
ANSWER = {"type": "object", "additionalProperties": False, "required": ["answer", "topic"], "properties": {
    "answer": {"type": "string", "maxLength": 60},
    "topic": {"enum": ["geography", "science", "math", "history", "other"]}}}
QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?", "What is 7 times 8?",
             "Who painted the Mona Lisa?", "What gas do plants take in?", "Which ocean is the largest?",
             "When did the Second World War end?", "What is the boiling point of water?", "Name a prime number.",
             "What is the longest river in Africa?", "What planet is known as the red planet?",
             "Who wrote Romeo and Juliet?", "What is the square root of 81?", "What language is spoken in Brazil?",
             "What is H2O?", "Which continent is Kenya in?", "What is 15 plus 27?", "Who was the first US president?",
             "What do bees make?", "How many days are in a leap year?"]


def prompt(**contract: Any) -> dict[str, Any]:
    return {"model": "smollm2-135m", "config": {"temperature": 0, "max_tokens": 96},
            "messages": [{"role": "system", "content": "Answer in JSON with the answer and its topic."},
                         {"role": "user", "content": "{user}"}], **contract}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, vllm_server):
    with pytest.MonkeyPatch.context() as env:
        for key, value in GIT_ENV.items():
            env.setenv(key, value)
        yield from _serve(tmp_path_factory.mktemp("contracts"), vllm_server.grpc_url)


def _serve(path, triton_url):
    repo = GitRepo(path)
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER, "strict": True}}
    for name, document in {"qa": prompt(response_format=fmt), "free": prompt(),
                           "tools": prompt(tools=[WEATHER, TIME])}.items():
        repo.commit({f"prompts/{name}.json": document}, f"{name} v1")
        repo.git("tag", "-a", "-m", "approve", f"prompts/{name}/v1")
    settings = GatewaySettings(repo=repo.path, triton_url=triton_url, default_model="smollm2-135m",
                               admin_token=None, serve_drafts=False, store_url=None)
    with ServerThread(create_app(settings, ui=False)) as url:
        yield url


def ask(url: str, name: str, question: str) -> dict[str, Any]:
    return httpx.post(f"{url}/v1/chat", json={"prompt": name, "message": question}, timeout=120).json()


def test_every_answer_parses_and_validates_when_the_server_enforces_the_schema(gateway):
    answers = [ask(gateway, "qa", question) for question in QUESTIONS]
    assert [(a["valid"], a["errors"]) for a in answers] == [(True, [])] * len(QUESTIONS), answers
    assert all(validation_errors(json.loads(a["text"]), ANSWER) == () for a in answers)


def test_without_enforcement_the_share_is_measured(gateway, record_property):
    texts = [ask(gateway, "free", question)["text"] for question in QUESTIONS]

    def valid(text: str) -> bool:
        try:
            return not validation_errors(json.loads(text), ANSWER)
        except ValueError:
            return False

    share = sum(map(valid, texts)) / len(texts)
    record_property("valid_share_without_enforcement", share)  # reported, not asserted
    print(f"\nwithout enforcement: {share:.0%} of {len(texts)} answers parse and validate")


def test_tool_calls_through_the_openai_client_and_a_follow_up(gateway):
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key="none", max_retries=0, timeout=120) as client:
        asked = [{"role": "user", "content": "What is the weather in Paris?"}]
        choice = client.chat.completions.create(model="tools", messages=asked, tool_choice="required").choices[0]
        call = choice.message.tool_calls[0]
        assert choice.finish_reason == "tool_calls" and call.function.name in ("weather", "time")
        tool = WEATHER if call.function.name == "weather" else TIME
        assert validation_errors(json.loads(call.function.arguments), tool["function"]["parameters"]) == ()
        follow = [*asked, choice.message.model_dump(exclude_none=True),
                  {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"}]
        answer = client.chat.completions.create(model="tools", messages=follow).choices[0]
        assert answer.finish_reason in ("stop", "tool_calls") and (answer.message.content or answer.message.tool_calls)


def test_a_looser_response_format_is_refused(gateway):
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key="none", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError, match="cannot loosen"):
            client.chat.completions.create(model="qa", messages=[{"role": "user", "content": "Hi"}],
                                           response_format={"type": "json_object"})
