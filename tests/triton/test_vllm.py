"""The real vLLM engine (SmolLM2-135M) inside real Triton, through the promptops client."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess

import pytest

from promptops.errors import ModelError
from promptops.triton import launcher as triton
from promptops.triton.client import InferenceClient, iterate_sync, run_sync
from tests.conftest import complete, require_serving, stream
from tests.triton.test_echo import CONTRACT_OUTPUTS, raw_responses, shapes

pytestmark = pytest.mark.vllm
MODEL = "smollm2-135m"
GERMANY = "<|im_start|>user\nWhat is the capital of Germany?<|im_end|>\n<|im_start|>assistant\n"
GREEDY = {"temperature": 0, "max_tokens": 32}


@pytest.mark.parametrize("sampling", [GREEDY, {"temperature": "0", "max_tokens": "32", "top_p": "0.95"}])
@pytest.mark.parametrize("streamed", [True, False])
def test_capital_of_germany_is_berlin(vllm_server, sampling, streamed):
    url = vllm_server.grpc_url
    if streamed:
        *chunks, answer = stream(url, MODEL, GERMANY, sampling)
        assert len(chunks) > 1 and "Berlin" in "".join(chunks) == answer.text
    else:
        assert "Berlin" in complete(url, MODEL, GERMANY, sampling).text


def test_four_concurrent_streams(vllm_server):
    async def collect(client):
        return "".join([chunk async for chunk in client.stream(MODEL, GERMANY, GREEDY) if isinstance(chunk, str)])

    async def main():
        async with InferenceClient(vllm_server.grpc_url) as client:
            return await asyncio.gather(*(collect(client) for _ in range(4)))

    assert all("Berlin" in answer for answer in run_sync(main()))


def test_closing_a_stream_aborts_the_engine_request(vllm_server, wait_for_log):
    needle = "vllm backend: cancelled request"
    before = vllm_server.log_path.read_text().count(needle)
    client = InferenceClient(vllm_server.grpc_url)
    events = iterate_sync(client.stream(MODEL, GERMANY, {"max_tokens": 500, "ignore_eos": True}))
    for _ in range(3):
        next(events)
    events.close()
    run_sync(client.close())
    assert wait_for_log(vllm_server.log_path, needle, before + 1)


@pytest.mark.parametrize(("sampling", "message"), [
    ({"temperature": -1}, "temperature"),
    ({"bogus": 1}, "unknown sampling parameter 'bogus'"),
    ({"max_tokens": "x"}, "max_tokens must be a number"),
])
def test_invalid_parameters_are_model_errors(vllm_server, sampling, message):
    url = vllm_server.grpc_url
    with pytest.raises(ModelError, match=message):
        complete(url, MODEL, GERMANY, sampling)
    assert "Berlin" in complete(url, MODEL, GERMANY, GREEDY).text


TWO_PLUS_TWO = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
COUNT_TOKENS = """
import json, os, sys
from transformers import AutoTokenizer
path = json.load(open(sys.argv[1]))["model"]
tokenizer = AutoTokenizer.from_pretrained(path)
print(json.dumps([len(tokenizer(text).input_ids) for text in json.loads(sys.stdin.read())]))
"""


def token_counts(*texts):
    """The model's own tokenizer, loaded in the serving environment (vLLM encodes prompts the same way)."""
    python = triton.locate(triton.TritonConfig().python_env).python
    model_json = triton.REPO_ROOT / "model_repository" / MODEL / "1" / "model.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(triton.TritonConfig().hf_home)}
    out = subprocess.run([str(python), "-c", COUNT_TOKENS, str(model_json)], input=json.dumps(texts), env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout)


@pytest.mark.parametrize(("sampling", "reason", "eos"), [({"max_tokens": 3}, "length", 0), ({"max_tokens": 64}, "stop", 1)])
def test_counts_are_the_tokenizers_and_the_finish_reason_is_reported(vllm_server, sampling, reason, eos):
    streamed = stream(vllm_server.grpc_url, MODEL, TWO_PLUS_TWO, {"temperature": 0, **sampling})[-1]
    whole = complete(vllm_server.grpc_url, MODEL, TWO_PLUS_TWO, {"temperature": 0, **sampling})
    assert streamed == whole and whole.finish_reason == reason
    prompt_tokens, answer_tokens = token_counts(TWO_PLUS_TWO, whole.text)
    # A stop by end-of-sequence counts the EOS token, which the text leaves out.
    assert (whole.prompt_tokens, whole.completion_tokens) == (prompt_tokens, answer_tokens + eos)


@pytest.mark.parametrize("stream", [False, True])
def test_outputs_match_the_echo_models_dtypes_and_shapes(vllm_server, stream):
    responses = raw_responses(vllm_server.grpc_url, MODEL, TWO_PLUS_TWO, {"temperature": 0, "max_tokens": 4,
                                                                            "logprobs": 0}, stream=stream)
    assert len(responses) == (4 if stream else 1) and all(shapes(r) == CONTRACT_OUTPUTS for r in responses)
    assert responses[-1].as_numpy("finish_reason")[0] == b"length"


def test_logprobs_one_per_token_summing_to_the_cumulative(vllm_server):
    done = complete(vllm_server.grpc_url, MODEL, TWO_PLUS_TWO, {"temperature": 0, "max_tokens": 8}, logprobs=True)
    assert len(done.logprobs) == done.completion_tokens
    chosen = [next(iter(position.values())) for position in done.logprobs]
    assert all(set(c) == {"logprob", "rank", "decoded_token"} and c["logprob"] <= 0 for c in chosen)
    assert sum(c["logprob"] for c in chosen) == pytest.approx(done.cumulative_logprob, abs=1e-3)


DEMO_ENGINE_KEYS = {"gpu_memory_utilization": 0.9, "max_num_batched_tokens": 4096, "swap_space": 4}


def test_model_json_written_for_a_gpu_loads_on_cpu_with_a_note(tmp_path):
    require_serving()
    repo = tmp_path / "repo"
    shutil.copytree(triton.REPO_ROOT / "model_repository" / MODEL, repo / MODEL)
    model_json = repo / MODEL / "1" / "model.json"
    model_json.write_text(json.dumps({**json.loads(model_json.read_text()), **DEMO_ENGINE_KEYS}))
    http, grpc, metrics = triton.free_ports(3)
    config = triton.TritonConfig(model_repositories=[repo], models=[MODEL], http_port=http, grpc_port=grpc,
                                 metrics_port=metrics, runtime_dir=tmp_path / "rt")
    triton.up(config, timeout=300)
    try:
        assert "4" in complete(config.grpc_url, MODEL, TWO_PLUS_TWO, GREEDY).text
        log = config.log_path.read_text()
        assert "ignoring gpu_memory_utilization=0.9 on CPU" in log and "ignoring swap_space=4" in log
    finally:
        triton.down(config)


def test_promptops_test_passes_chat_prompts_through_the_models_chat_template(repo, vllm_server):
    from typer.testing import CliRunner

    from promptops.cli.app import app
    from promptops.prompt.model import NEW_PROMPT

    chat = json.loads((triton.REPO_ROOT / "prompts" / "chat.json").read_text())
    germany = {"name": "capital", "vars": {"user": "What is the capital of Germany?"},
               "assert": [{"type": "contains", "value": "Berlin"}]}
    repo.write({"prompts/chat.json": chat, "prompts/fresh.json": {**NEW_PROMPT, "tests": [germany]}})
    result = CliRunner().invoke(app, ["--triton-url", vllm_server.grpc_url, "test", "--format", "json"])
    report = json.loads(result.output)["cases"]
    assert result.exit_code == 0 and [r["id"] for r in report if r["passed"]] == [
        "chat@draft::capital of Germany", "chat@draft::arithmetic", "fresh@draft::capital"], report


def test_openai_usage_is_the_tokenizers_count_and_finish_reason_the_models(repo, vllm_server, monkeypatch, tmp_path):
    """/v1/chat/completions through the gateway: usage counts the rendered prompt and the answer exactly."""
    from fastapi.testclient import TestClient

    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    template = "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"  # renders to TWO_PLUS_TWO
    repo.commit({"prompts/math.json": {"model": MODEL, "config": {"temperature": 0}, "template": template}})
    settings = GatewaySettings(repo=repo.path, triton_url=vllm_server.grpc_url, default_model=MODEL,
                               admin_token=None, store_url=None, serve_unreviewed=True)  # math@1 is not approved
    ask = {"model": "math@1", "messages": [{"role": "user", "content": "What is 2+2?"}]}
    with TestClient(create_app(settings, ui=False), base_url="http://127.0.0.1:7070") as client:
        answers = [client.post("/v1/chat/completions", json={**ask, "max_tokens": n}).json() for n in (3, 64)]
        streamed = client.post("/v1/chat/completions", json={**ask, "max_tokens": 3, "stream": True,
                                                             "stream_options": {"include_usage": True}}).text
    chunks = [json.loads(line[6:]) for line in streamed.splitlines() if line.startswith("data: {")]
    texts = [a["choices"][0]["message"]["content"] for a in answers]
    prompt_tokens, *answer_tokens = token_counts(TWO_PLUS_TWO, *texts)
    assert [a["choices"][0]["finish_reason"] for a in answers] == ["length", "stop"]
    # A stop by end-of-sequence counts the EOS token, which the text leaves out.
    assert [(a["usage"]["prompt_tokens"], a["usage"]["completion_tokens"]) for a in answers] == [
        (prompt_tokens, answer_tokens[0]), (prompt_tokens, answer_tokens[1] + 1)]
    assert chunks[-1]["usage"] == answers[0]["usage"] and chunks[-2]["choices"][0]["finish_reason"] == "length"
