"""The client against a real Triton serving the deterministic echo model."""

from __future__ import annotations

import asyncio
import json

import pytest

from promptops.errors import InferenceTimeout, ModelError, ModelNotFound, ServerUnavailable
from promptops.prompt import sampling as sampling_contract
from promptops.triton import launcher as triton
from promptops.triton.client import Answer, InferenceClient, iterate_sync, run_sync
from tests.conftest import complete, prompt_doc, stream
from tests.prompt.test_schema import problems_of

TEXT = "the quick brown fox"


@pytest.mark.parametrize(("sampling", "chunks"), [
    ({}, ["the ", "quick ", "brown ", "fox"]),
    ({"max_tokens": 2}, ["the ", "quick "]),
    ({"max_tokens": "3", "temperature": "0.7", "top_p": 0.95}, ["the ", "quick ", "brown "]),
])
def test_streamed_and_whole_answers_are_exact(echo_server, sampling, chunks):
    *deltas, answer = stream(echo_server.grpc_url, "echo", TEXT, sampling)
    assert deltas == chunks and answer.text == "".join(chunks)
    assert complete(echo_server.grpc_url, "echo", TEXT, sampling).text == "".join(chunks)


def test_four_concurrent_streams_stay_separate(echo_server):
    prompts = [f"stream {i} says hello" for i in range(4)]

    async def collect(client, prompt):
        return [chunk async for chunk in client.stream("echo", prompt, {"delay_ms": 20}) if isinstance(chunk, str)]

    async def main():
        async with InferenceClient(echo_server.grpc_url) as client:
            return await asyncio.gather(*(collect(client, p) for p in prompts))

    assert ["".join(chunks) for chunks in run_sync(main())] == prompts


def test_closing_a_stream_cancels_it_on_the_server(echo_server, wait_for_log):
    before = echo_server.log_path.read_text().count("echo: cancelled")
    client = InferenceClient(echo_server.grpc_url)
    events = iterate_sync(client.stream("echo", "one two three four five six", {"delay_ms": 100}))
    assert next(events) == "one "
    events.close()
    run_sync(client.close())
    assert wait_for_log(echo_server.log_path, "echo: cancelled", before + 1)


def test_cancelling_the_task_cancels_the_request(echo_server, wait_for_log):
    async def main():
        async with InferenceClient(echo_server.grpc_url) as client:
            task = asyncio.create_task(client.complete("echo", "a b c d e f", {"delay_ms": 100}))
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
        stream(url, "echo", TEXT, sampling)
    with pytest.raises(ModelError, match=message):
        complete(url, "echo", TEXT, sampling)
    assert complete(url, "echo", TEXT).text == TEXT


def test_unknown_model_is_not_found_and_the_server_survives(echo_server):
    url = echo_server.grpc_url
    for _ in range(3):
        with pytest.raises(ModelNotFound, match="no-such-model"):
            complete(url, "no-such-model", TEXT)
    assert complete(url, "echo", TEXT).text == TEXT


def test_slow_answer_times_out(echo_server):
    with pytest.raises(InferenceTimeout):
        complete(echo_server.grpc_url, "echo", "a b c d", {"delay_ms": 300}, timeout_s=0.5)


@pytest.mark.parametrize("call", [complete, stream])
def test_no_server_means_server_unavailable(call):
    (port,) = triton.free_ports(1)
    with pytest.raises(ServerUnavailable, match="not reachable"):
        call(f"127.0.0.1:{port}", "echo", TEXT)


def test_readiness(echo_server):
    async def main():
        async with InferenceClient(echo_server.grpc_url) as client:
            return [await client.is_ready(), await client.is_ready("echo"), await client.is_ready("nope")]

    assert run_sync(main()) == [True, True, False]


# The contract's extra outputs as a client sees them: (datatype, shape), the same for echo and vLLM.
CONTRACT_OUTPUTS = {"text_output": ("BYTES", [1]), "finish_reason": ("BYTES", [1]),
                    "cumulative_logprob": ("FP32", [1]), "logprobs": ("BYTES", [1]),
                    "num_input_tokens": ("UINT32", []), "num_output_tokens": ("UINT32", [1])}


def raw_responses(url, model, prompt, sampling, *, stream, flags=sampling_contract.RETURN_FLAGS):
    """Every response of one request through tritonclient's own stream API, as InferResults."""
    import queue

    import numpy as np
    import tritonclient.grpc as grpcclient

    inputs = [grpcclient.InferInput("text_input", [1], "BYTES"), grpcclient.InferInput("stream", [1], "BOOL"),
              grpcclient.InferInput("sampling_parameters", [1], "BYTES")]
    inputs += [grpcclient.InferInput(flag, [1], "BOOL") for flag in flags]
    values = [np.array([prompt.encode()], dtype=np.object_), np.array([stream]),
              np.array([json.dumps(sampling).encode()], dtype=np.object_)] + [np.array([True])] * len(flags)
    for tensor, value in zip(inputs, values, strict=True):
        tensor.set_data_from_numpy(value)
    results: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: results.put(error or result))
    client.async_stream_infer(model, inputs, enable_empty_final_response=True)
    responses = []
    while not responses or not responses[-1].get_response().parameters["triton_final_response"].bool_param:
        item = results.get(timeout=60)
        assert not isinstance(item, Exception), item
        responses.append(item)
    client.stop_stream()
    return responses


def shapes(result):
    return {o.name: (o.datatype, list(o.shape)) for o in result.get_response().outputs}


@pytest.mark.parametrize("stream", [False, True])
def test_every_output_has_the_contracts_dtype_and_shape(echo_server, stream):
    responses = raw_responses(echo_server.grpc_url, "echo", TEXT, {"logprobs": 0}, stream=stream)
    assert len(responses) == (4 if stream else 1)
    assert all(shapes(r) == CONTRACT_OUTPUTS for r in responses)
    assert [r.as_numpy("finish_reason")[0] for r in responses][-2:] == ([b"None"] if stream else []) + [b"stop"]
    assert sum(int(r.as_numpy("num_output_tokens")[0]) for r in responses) == 4


def test_outputs_come_only_when_asked(echo_server):
    (only,) = raw_responses(echo_server.grpc_url, "echo", TEXT, {}, stream=False, flags=("return_num_input_tokens",))
    assert shapes(only) == {k: CONTRACT_OUTPUTS[k] for k in ("text_output", "num_input_tokens")}
    assert only.as_numpy("text_output")[0] == TEXT.encode() + TEXT.encode()  # prompt prepended by default


@pytest.mark.parametrize(("sampling", "expected"), [
    ({}, Answer(TEXT, 4, 4, "stop")),
    ({"max_tokens": 2}, Answer("the quick ", 4, 2, "length")),
    ({"max_tokens": "4"}, Answer(TEXT, 4, 4, "length")),
])
def test_answers_carry_the_models_counts_and_the_clocks_timing_streamed_or_not(echo_server, sampling, expected):
    *deltas, streamed = stream(echo_server.grpc_url, "echo", TEXT, sampling)
    whole = complete(echo_server.grpc_url, "echo", TEXT, sampling)
    assert streamed == whole == expected and "".join(deltas) == expected.text
    assert 0 < streamed.ttft_s <= streamed.total_s and 0 < whole.ttft_s <= whole.total_s


def test_logprobs_are_asked_for_and_joined_across_the_stream(echo_server):
    done = stream(echo_server.grpc_url, "echo", TEXT, logprobs=True)[-1]
    assert [next(iter(p.values()))["decoded_token"] for p in done.logprobs] == ["the ", "quick ", "brown ", "fox"]
    assert done.cumulative_logprob == 0.0 and done.total_tokens == 8
    assert complete(echo_server.grpc_url, "echo", TEXT).logprobs is None


EXAMPLES = {"boolean": True, "string": "x", "stop": ["\n"], "integer_list": [2], "string_list": ["x"],
            "integer_matrix": [[2]], "logit_bias": {"2": 1.5}, "object": {}, "object_or_json": '{"regex": "a b"}'}


def example(key):
    if key.kind in ("number", "integer"):
        return next(b for b in (key.maximum, key.minimum, 1) if b is not None)
    return EXAMPLES[key.kind]


# With tests/prompt/test_sampling.py: schema == sampling.py == the installed vLLM == what the echo model accepts.
@pytest.mark.parametrize("key", sampling_contract.KEYS.values(), ids=list(sampling_contract.KEYS))
def test_the_schema_and_the_echo_model_accept_every_key(echo_server, key):
    config = {key.name: example(key)}
    prompt, problems = problems_of(prompt_doc(config=config))
    assert prompt is not None, problems
    if key.name == "lora_name":  # a known key, refused like NVIDIA's backend does without LoRA
        with pytest.raises(ModelError, match="LoRA feature is not enabled"):
            complete(echo_server.grpc_url, "echo", "a b", config)
    else:
        assert complete(echo_server.grpc_url, "echo", "a b", {**config, "max_tokens": 5}).text == "a b"


# The structured-output keys as NVIDIA's backend reads them: `structured_outputs` (a JSON string of vLLM's
# StructuredOutputsParams) and `guided_decoding` (an object, mapped onto it); tests/triton/test_vllm.py
# sends the same to the CPU backend. The echo answers what fits the constraint from its prompt.
@pytest.mark.parametrize("constraint, prompt, answer", [
    ({"json": {"type": "object"}}, 'say {"a": 1} now', '{"a": 1}'),
    ({"json_object": True}, 'x {"a": {"b": 2}} y {"c": 3}', '{"c": 3}'),
    ({"choice": ["no", "yes"]}, "yes or no", "yes"),
    ({"regex": "[0-9]+"}, "call 555 now", "555"),
    ({"grammar": 'root ::= "a"'}, "a b", "a b"),
    ({"structural_tag": "{}"}, "a b", "a b"),
])
@pytest.mark.parametrize("key", ["structured_outputs", "guided_decoding"])
def test_the_echo_model_reads_structured_outputs_like_nvidias_backend(echo_server, constraint, prompt, answer, key):
    value = json.dumps(constraint) if key == "structured_outputs" else {**constraint, "backend": "xgrammar"}
    assert complete(echo_server.grpc_url, "echo", prompt, {key: value}).text == answer


STRUCTURED_REFUSALS = [
    ({"structured_outputs": '{"json_object": true, "regex": "x"}'}, "exactly one kind of constraint"),
    ({"structured_outputs": '{"jsn": {}}'}, "unknown structured_outputs field 'jsn'"),
    ({"guided_decoding": {"choice": ["a"], "backend": "outlines"}}, "backend is no longer supported"),
]


@pytest.mark.parametrize("sampling, message", STRUCTURED_REFUSALS)
def test_the_echo_model_refuses_structured_outputs_like_the_cpu_backend(echo_server, sampling, message):
    with pytest.raises(ModelError, match=message):
        complete(echo_server.grpc_url, "echo", "a b", sampling)
