"""Serving overhead, side by side in one run (prints one table).

1. The embedded model (SmolLM2-135M, greedy, fixed length): tokens/s and time to
   first token of vLLM's engine called in-process (run with .venv-serve's Python
   as a subprocess) versus the same engine inside Triton through
   `promptops.triton.client.InferenceClient`. Single stream and 4 concurrent streams.
2. A tiny streamed echo request (3 chunks): p50/p99 latency through the promptops
   client versus a bare `tritonclient.grpc` stream.

The engine runs first, alone, then Triton: the two never share the 2 cores.
Usage: python benchmarks/serving.py [--tokens 128] [--runs 3] [--echo-requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from promptops.triton import launcher as triton
from promptops.triton.client import InferenceClient, run_sync

MODEL = "smollm2-135m"
PROMPT = "<|im_start|>user\nWrite a long story about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n"
ECHO_PROMPT = "one two three"

ENGINE_SCRIPT = r"""
import locale; locale.setlocale(locale.LC_CTYPE, "")
import asyncio, json, sys, time
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.sampling_params import RequestOutputKind, SamplingParams
from vllm.v1.engine.async_llm import AsyncLLM

engine_args, prompt, tokens, runs, streams, rounds, single_tokens = json.loads(sys.argv[1])

async def main():
    engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_args))

    async def one(rid, count_to):
        params = SamplingParams(temperature=0, max_tokens=count_to, ignore_eos=True,
                                output_kind=RequestOutputKind.DELTA)
        start, first, count = time.perf_counter(), None, 0
        async for out in engine.generate({"prompt": prompt}, params, rid):
            if first is None and out.outputs[0].token_ids:
                first = time.perf_counter() - start
            count += len(out.outputs[0].token_ids)
        return first, count, time.perf_counter() - start

    await one("warm", tokens)
    single = [await one(f"s{i}", single_tokens) for i in range(runs)]
    batches = []
    for r in range(rounds):
        started = time.perf_counter()
        results = await asyncio.gather(*(one(f"c{r}-{i}", tokens) for i in range(streams)))
        batches.append({"streams": results, "wall": time.perf_counter() - started})
    engine.shutdown()
    print("RESULT " + json.dumps({"single": single, "batches": batches}))

asyncio.run(main())
"""


def engine_args() -> dict:
    """model.json of the embedded model, adapted the way the CPU backend does (GPU-only keys dropped)."""
    from promptops.prompt import sampling

    raw = json.loads((triton.REPO_ROOT / "model_repository" / MODEL / "1" / "model.json").read_text())
    args = {k: v for k, v in raw.items()
            if k not in sampling.CPU_IGNORED_ENGINE_KEYS and k not in sampling.RETIRED_ENGINE_KEYS}
    args["enable_log_requests"] = not args.pop("disable_log_requests", True)
    return args


def run_engine_direct(tokens: int, runs: int, streams: int = 4, rounds: int = 1, prompt: str = PROMPT,
                      single_tokens: int | None = None) -> dict:
    """Run the engine in .venv-serve's Python with the same environment Triton gets: a warm-up, `runs`
    single streams of `single_tokens` (default `tokens`) tokens, then `rounds` batches of `streams`
    concurrent streams of `tokens` tokens (greedy, ignore_eos). Token counts are the engine's own.

    Returns {"single": [(ttft_s, tokens, total_s)], "batches": [{"streams": [...], "wall": s}]}."""
    config = triton.TritonConfig()
    env_info = triton.locate(config.python_env)
    env = triton.TritonServer(config).environment(env_info)
    payload = json.dumps([engine_args(), prompt, tokens, runs, streams, rounds, single_tokens or tokens])
    proc = subprocess.run([str(env_info.python), "-c", ENGINE_SCRIPT, payload], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tempfile.gettempdir())
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"engine run failed:\n{proc.stderr[-3000:]}")


async def _client_stream(client: InferenceClient, tokens: int) -> tuple[float, int, float]:
    """(time to first token, the model's own completion token count, total time) of one stream."""
    sampling = {"temperature": 0, "max_tokens": tokens, "ignore_eos": True}
    start, first, count = time.perf_counter(), None, 0
    async for event in client.stream(MODEL, PROMPT, sampling):
        if not isinstance(event, str):
            count = event.completion_tokens
        elif first is None:
            first = time.perf_counter() - start
    return first or 0.0, count, time.perf_counter() - start


def run_through_client(url: str, tokens: int, runs: int) -> dict:
    async def main() -> dict:
        async with InferenceClient(url, timeout_s=600) as client:
            await _client_stream(client, tokens)
            single = [await _client_stream(client, tokens) for _ in range(runs)]
            started = time.perf_counter()
            four = await asyncio.gather(*(_client_stream(client, tokens) for _ in range(4)))
            return {"single": single, "batches": [{"streams": list(four), "wall": time.perf_counter() - started}]}

    return run_sync(main())


def echo_client_latencies(url: str, count: int) -> list[float]:
    async def main() -> list[float]:
        out = []
        async with InferenceClient(url) as client:
            for i in range(count + 20):
                start = time.perf_counter()
                async for _ in client.stream("echo", ECHO_PROMPT, {}):
                    pass
                if i >= 20:
                    out.append(time.perf_counter() - start)
        return out

    return run_sync(main())


def echo_bare_latencies(url: str, count: int) -> list[float]:
    """The same request with plain tritonclient.grpc: one stream, callback, empty final response."""
    import numpy as np
    import tritonclient.grpc as grpcclient

    done: queue.Queue = queue.Queue()

    def callback(result, error):
        if error is not None or result.get_response().parameters["triton_final_response"].bool_param:
            done.put(error)

    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=callback)
    inputs = []
    for name, dtype, value in (("text_input", "BYTES", np.array([ECHO_PROMPT.encode()], dtype=np.object_)),
                               ("stream", "BOOL", np.array([True])),
                               ("sampling_parameters", "BYTES", np.array([b"{}"], dtype=np.object_)),
                               ("exclude_input_in_output", "BOOL", np.array([True]))):
        tensor = grpcclient.InferInput(name, [1], dtype)
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    out = []
    try:
        for i in range(count + 20):
            start = time.perf_counter()
            client.async_stream_infer("echo", inputs, enable_empty_final_response=True)
            if done.get(timeout=10) is not None:
                raise SystemExit("bare echo request failed")
            if i >= 20:
                out.append(time.perf_counter() - start)
    finally:
        client.stop_stream()
        client.close()
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _model_rows(label: str, data: dict) -> list[tuple[str, str, str]]:
    single = data["single"]
    ttft = statistics.median(r[0] for r in single)
    tps = statistics.median(r[1] / r[2] for r in single)
    batch = data["batches"][0]
    four = sum(r[1] for r in batch["streams"]) / batch["wall"]
    return [(f"{label}: tokens/s, 1 stream", f"{tps:.1f}", "tok/s"),
            (f"{label}: tokens/s, 4 streams", f"{four:.1f}", "tok/s"),
            (f"{label}: time to first token (p50)", f"{ttft * 1000:.1f}", "ms")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--echo-requests", type=int, default=500)
    args = parser.parse_args(argv)

    direct = run_engine_direct(args.tokens, args.runs)

    http, grpc_port, metrics = triton.free_ports(3)
    config = triton.TritonConfig(
        model_repositories=[triton.REPO_ROOT / "model_repository", triton.REPO_ROOT / "tests" / "model_repository"],
        models=[MODEL, "echo"], http_port=http, grpc_port=grpc_port, metrics_port=metrics,
        runtime_dir=Path(tempfile.mkdtemp(prefix="promptops-bench-")))
    started = time.monotonic()
    triton.up(config, timeout=300)
    cold = time.monotonic() - started
    try:
        served = run_through_client(config.grpc_url, args.tokens, args.runs)
        mine = echo_client_latencies(config.grpc_url, args.echo_requests)
        bare = echo_bare_latencies(config.grpc_url, args.echo_requests)
    finally:
        triton.down(config)

    rows = [("Triton + vLLM cold start to ready", f"{cold:.1f}", "s")]
    rows += _model_rows("engine in-process", direct)
    rows += _model_rows("promptops client via Triton", served)
    for label, values in (("bare tritonclient", bare), ("promptops client", mine)):
        rows.append((f"echo 3-chunk stream, {label} p50", f"{_pct(values, 0.5) * 1000:.2f}", "ms"))
        rows.append((f"echo 3-chunk stream, {label} p99", f"{_pct(values, 0.99) * 1000:.2f}", "ms"))
    ratio = statistics.median(r[1] / r[2] for r in served["single"]) / statistics.median(
        r[1] / r[2] for r in direct["single"])
    rows.append(("tokens/s via Triton as % of engine (1 stream)", f"{ratio * 100:.0f}", "%"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>9}  unit")
    print(f"{'-' * width}  {'-' * 9}  ----")
    for name, value, unit in rows:
        print(f"{name:<{width}}  {value:>9}  {unit}")
    print(f"({args.tokens} tokens per request, greedy, ignore_eos; {args.runs} runs; "
          f"{args.echo_requests} echo requests; {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
