"""The client against a real Triton serving the deterministic echo model."""

from __future__ import annotations

import asyncio

import pytest

from promptops import triton
from promptops.errors import InferenceTimeout, ModelError, ModelNotFound, ServerUnavailable
from promptops.inference import InferenceClient, generate_sync, run_sync, stream_sync

TEXT = "the quick brown fox"


@pytest.mark.parametrize(("sampling", "chunks"), [
    ({}, ["the ", "quick ", "brown ", "fox"]),
    ({"max_tokens": 2}, ["the ", "quick "]),
    ({"max_tokens": "3", "temperature": "0.7", "top_p": 0.95}, ["the ", "quick ", "brown "]),
])
def test_streamed_and_whole_answers_are_exact(echo_server, sampling, chunks):
    url = echo_server.grpc_url
    assert list(stream_sync("echo", TEXT, sampling, url=url)) == chunks
    assert generate_sync("echo", TEXT, sampling, url=url) == "".join(chunks)


def test_four_concurrent_streams_stay_separate(echo_server):
    prompts = [f"stream {i} says hello" for i in range(4)]

    async def collect(client, prompt):
        return [chunk async for chunk in client.stream("echo", prompt, {"delay_ms": 20})]

    async def main():
        async with InferenceClient(echo_server.grpc_url) as client:
            return await asyncio.gather(*(collect(client, p) for p in prompts))

    assert ["".join(chunks) for chunks in run_sync(main())] == prompts


def test_closing_a_stream_cancels_it_on_the_server(echo_server, wait_for_log):
    before = echo_server.log_path.read_text().count("echo: cancelled")
    stream = stream_sync("echo", "one two three four five six", {"delay_ms": 100},
                         url=echo_server.grpc_url)
    assert next(stream) == "one "
    stream.close()
    assert wait_for_log(echo_server.log_path, "echo: cancelled", before + 1)


def test_cancelling_the_task_cancels_the_request(echo_server, wait_for_log):
    async def main():
        async with InferenceClient(echo_server.grpc_url) as client:
            task = asyncio.create_task(client.generate("echo", "a b c d e f", {"delay_ms": 100}))
            await asyncio.sleep(0.25)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    before = echo_server.log_path.read_text().count("echo: cancelled")
    run_sync(main())
    assert wait_for_log(echo_server.log_path, "echo: cancelled", before + 1)


@pytest.mark.parametrize(("sampling", "message"), [
    ({"temperature": -1}, "temperature must be non-negative"),
    ({"bogus": 1}, "unknown sampling parameter"),
    ({"max_tokens": "many"}, "max_tokens must be a number"),
    ({"fail_after": 1}, "failing after 1 chunks"),
])
def test_model_errors_are_reported_and_the_server_keeps_serving(echo_server, sampling, message):
    url = echo_server.grpc_url
    with pytest.raises(ModelError, match=message):
        list(stream_sync("echo", TEXT, sampling, url=url))
    with pytest.raises(ModelError, match=message):
        generate_sync("echo", TEXT, sampling, url=url)
    assert generate_sync("echo", TEXT, url=url) == TEXT


def test_unknown_model_is_not_found_and_the_server_survives(echo_server):
    url = echo_server.grpc_url
    for _ in range(3):
        with pytest.raises(ModelNotFound, match="no-such-model"):
            generate_sync("no-such-model", TEXT, url=url)
    assert generate_sync("echo", TEXT, url=url) == TEXT


def test_slow_answer_times_out(echo_server):
    with pytest.raises(InferenceTimeout):
        generate_sync("echo", "a b c d", {"delay_ms": 300}, url=echo_server.grpc_url, timeout_s=0.5)


@pytest.mark.parametrize("call", [
    lambda url: generate_sync("echo", TEXT, url=url),
    lambda url: list(stream_sync("echo", TEXT, url=url)),
])
def test_no_server_means_server_unavailable(call):
    (port,) = triton.free_ports(1)
    with pytest.raises(ServerUnavailable, match="not reachable"):
        call(f"127.0.0.1:{port}")


def test_readiness(echo_server):
    async def main():
        async with InferenceClient(echo_server.grpc_url) as client:
            return [await client.is_ready(), await client.is_ready("echo"), await client.is_ready("nope")]

    assert run_sync(main()) == [True, True, False]
