"""The real vLLM engine (SmolLM2-135M) inside real Triton, through the promptops client."""

from __future__ import annotations

import asyncio

import pytest

from promptops.errors import ModelError
from promptops.inference import InferenceClient, generate_sync, run_sync, stream_sync

pytestmark = pytest.mark.vllm
MODEL = "smollm2-135m"
GERMANY = "<|im_start|>user\nWhat is the capital of Germany?<|im_end|>\n<|im_start|>assistant\n"
GREEDY = {"temperature": 0, "max_tokens": 32}


@pytest.mark.parametrize("sampling", [GREEDY, {"temperature": "0", "max_tokens": "32", "top_p": "0.95"}])
@pytest.mark.parametrize("streamed", [True, False])
def test_capital_of_germany_is_berlin(vllm_server, sampling, streamed):
    url = vllm_server.grpc_url
    if streamed:
        chunks = list(stream_sync(MODEL, GERMANY, sampling, url=url))
        assert len(chunks) > 1 and "Berlin" in "".join(chunks)
    else:
        assert "Berlin" in generate_sync(MODEL, GERMANY, sampling, url=url)


def test_four_concurrent_streams(vllm_server):
    async def collect(client):
        return "".join([chunk async for chunk in client.stream(MODEL, GERMANY, GREEDY)])

    async def main():
        async with InferenceClient(vllm_server.grpc_url) as client:
            return await asyncio.gather(*(collect(client) for _ in range(4)))

    assert all("Berlin" in answer for answer in run_sync(main()))


def test_closing_a_stream_aborts_the_engine_request(vllm_server, wait_for_log):
    needle = "vllm backend: cancelled request"
    before = vllm_server.log_path.read_text().count(needle)
    stream = stream_sync(MODEL, GERMANY, {"max_tokens": 500, "ignore_eos": True}, url=vllm_server.grpc_url)
    for _ in range(3):
        next(stream)
    stream.close()
    assert wait_for_log(vllm_server.log_path, needle, before + 1)


@pytest.mark.parametrize(("sampling", "message"), [
    ({"temperature": -1}, "temperature"),
    ({"bogus": 1}, "unknown sampling parameter 'bogus'"),
    ({"max_tokens": "x"}, "max_tokens must be a number"),
])
def test_invalid_parameters_are_model_errors(vllm_server, sampling, message):
    url = vllm_server.grpc_url
    with pytest.raises(ModelError, match=message):
        generate_sync(MODEL, GERMANY, sampling, url=url)
    assert "Berlin" in generate_sync(MODEL, GERMANY, GREEDY, url=url)
