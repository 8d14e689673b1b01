"""Input that cannot fit the model is refused before Triton (422), counted with the model's own tokenizer."""

from __future__ import annotations

import re

import pytest

from promptops.prompt import tokens
from tests.conftest import ECHO_REPOSITORY, complete

TURNS = [{"role": ("user", "assistant")[i % 2], "content": f"turn {i} says hello"} for i in range(5_000)]


@pytest.fixture(autouse=True)
def echo_is_a_local_model(monkeypatch):
    """The gateway reads the echo model's folder (model.json's max_model_len, tokenizer.json) as Triton's."""
    monkeypatch.setenv("PROMPTOPS_MODEL_REPOSITORY", str(ECHO_REPOSITORY))


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat", {"prompt": "support", "message": "hi", "history": TURNS}),
    ("/v1/chat/completions", {"model": "support", "messages": [*TURNS, {"role": "user", "content": "hi"}]}),
])
def test_five_thousand_turns_are_refused_with_the_numbers(make_client, path, body):
    response = make_client(max_history_turns=0).post(path, json=body)
    error = response.json()["error"]
    assert (response.status_code, error["type"]) == (422, "context_too_long")
    found = re.fullmatch(r"the prompt is ([\d,]+) tokens and asks for up to 256 more, over the 2,048-token "
                         r"context of echo", error["message"])
    assert found and int(found[1].replace(",", "")) == error["prompt_tokens"] > 20_000
    assert (error["max_tokens"], error["context"]) == (256, 2048) and "fewer history turns" in error["fix"]


def test_more_history_turns_than_the_limit_are_refused(make_client):
    response = make_client(max_history_turns=200).post("/v1/chat", json={"prompt": "support", "message": "hi",
                                                                          "history": TURNS[:201]})
    assert response.status_code == 422 and response.json()["error"] == {
        "type": "history_too_long", "message": "the request sends 201 history turns, over this gateway's limit of 200",
        "fix": "send at most the last 200 turns (the limit is PROMPTOPS_MAX_HISTORY_TURNS)"}


def test_a_prompt_that_fits_is_answered(client):
    response = client.post("/v1/chat", json={"prompt": "support", "message": "hi", "history": TURNS[:200]})
    # "S1 ", then 5 tokens a turn ("user: turn 7 says hello\n"), then "hi": the model's own count.
    assert response.status_code == 200 and response.json()["usage"]["prompt_tokens"] == 1 + 5 * 200 + 1


@pytest.mark.parametrize("text", ["the quick brown fox", "  leading\tand trailing \n", "x\x1cy\u2003z\xa0w",
                                  "héllo 😀 wörld\n\n", "w " * 2047])
def test_the_gateways_count_is_the_echo_models_own(echo_server, text):
    counted = tokens.count("echo", text, [ECHO_REPOSITORY])
    assert counted == complete(echo_server.grpc_url, "echo", text, {"max_tokens": 1}).prompt_tokens
