"""Gateway cost, measured: the gateway against the same requests sent straight to Triton (or the engine).

One table, the targets (docs/gateway.md "Measured") beside the figures, each marked met or not.
Three paths per measure:

- direct: echo rows: a bare `tritonclient.grpc.aio` stream (one long-lived stream per client, the same
  inputs and return flags the gateway sends); LLM rows: vLLM's engine in-process, alone on the machine
  (benchmarks/serving.py's engine script, in .venv-serve).
- promptops client: `promptops.triton.client.InferenceClient.stream`, what the gateway itself calls
  (one gRPC stream per request, usage flags). Not a target; it shows where the difference comes from.
- gateway: `promptops serve --no-ui` in its own process (uvicorn), on loopback (generation is open there;
  nothing here writes, so no credential is needed). Echo: `POST /v1/chat` streamed (SSE); LLM: `POST
  /v1/chat/completions` with stream=true and stream_options.include_usage (OpenAI SSE). Read with a
  minimal keep-alive HTTP/1.1 client, so the numbers are the gateway's, not an HTTP library's.

Echo rows: 3-chunk answers from tests/model_repository/echo, each client sending back to back; the paths
take turns in short slices so a change in machine load hits all of them alike. CPU per request is read
from the processes' own counters (utime + stime, all threads, via psutil) over the same slices: the
process that talks to Triton (the load generator for direct and client, the gateway process for the
gateway), Triton with its python-backend stubs, and all processes together (load generator, gateway,
Triton: on a CPU-bound machine requests/s is about cores / that). On a shared 2-core machine the CPU
figures are the stable ones; latency and requests/s move with whatever else runs.

LLM rows: SmolLM2-135M (model_repository/smollm2-135m), greedy, ignore_eos, a fixed max_tokens, so every
stream generates the same number of tokens; tokens are the model's own counts (the engine's token ids,
the Answer's num_output_tokens, OpenAI `usage`), never counted chunks. Tokens/s is the sum of the
completion tokens of `--clients` concurrent streams over their wall time, median of 3 batches; time to
first token is the median of 10 single streams of 16 tokens. The engine runs first, alone; then Triton: client and
gateway batches alternate.

Run: .venv/bin/python benchmarks/gateway.py [--seconds 5] [--clients 8] [--skip-llm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _timing import print_table  # noqa: E402

from promptops.triton import launcher as triton  # noqa: E402
from promptops.triton.client import USAGE_FLAGS, InferenceClient  # noqa: E402

ECHO_MESSAGE = "a b c"  # the echo model answers it in 3 chunks
GATEWAY_CPU_US = 1000  # the gateway process's CPU per echo request, target (docs/gateway.md)
ECHO_SAMPLING = {"max_tokens": 16}
LLM_MODEL = "smollm2-135m"
LLM_MESSAGE = "Write a long story about a lighthouse keeper."
LLM_TOKENS = 128  # per stream in the throughput batches
TTFT_TOKENS = 16  # per single stream in the time-to-first-token runs
TTFT_RUNS = 10
LLM_ROUNDS = 3
ECHO_SLICES = 4  # turns each path takes per echo measure
PROMPTS = {
    "bench": {"model": "echo", "config": ECHO_SAMPLING, "template": "{user}"},
    # The same text benchmarks/serving.py gives the engine (a template prompt is sent as written).
    "story": {"model": LLM_MODEL, "config": {"temperature": 0, "max_tokens": LLM_TOKENS, "ignore_eos": True},
              "template": "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"},
}
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@localhost", "GIT_CONFIG_NOSYSTEM": "1"}


def make_repo(path: Path) -> None:
    """A prompt repository with the approved prompts `bench` (echo) and `story` (SmolLM2)."""
    env = {**os.environ, **GIT_ENV}
    (path / "prompts").mkdir(parents=True)
    for name, prompt in PROMPTS.items():
        (path / "prompts" / f"{name}.json").write_text(json.dumps(prompt))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"],
                 *(["tag", "-a", "-m", "ok", f"prompts/{name}/v1"] for name in PROMPTS)):
        subprocess.run(["git", *args], cwd=path, check=True, env=env)


# -- CPU counters --------------------------------------------------------------------------------------------


class CPU:
    """utime + stime (seconds, every thread) of a process, and with `tree` of its descendants alive now."""

    def __init__(self, pid: int, tree: bool = False) -> None:
        process = psutil.Process(pid)
        self.processes = [process, *(process.children(recursive=True) if tree else [])]

    def __call__(self) -> float:
        total = 0.0
        for process in self.processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total


# -- the three echo clients --------------------------------------------------------------------------------


class BareStream:
    """tritonclient.grpc.aio: one bidirectional stream for all of this client's requests."""

    def __init__(self, url: str) -> None:
        import numpy as np
        import tritonclient.grpc.aio as grpcclient

        self.client = grpcclient.InferenceServerClient(url)
        inputs = []
        for name, dtype, value in (
                ("text_input", "BYTES", np.array([ECHO_MESSAGE.encode()], dtype=np.object_)),
                ("stream", "BOOL", np.array([True])),
                ("sampling_parameters", "BYTES", np.array([json.dumps(ECHO_SAMPLING).encode()], dtype=np.object_)),
                ("exclude_input_in_output", "BOOL", np.array([True])),
                *((flag, "BOOL", np.array([True])) for flag in USAGE_FLAGS)):
            tensor = grpcclient.InferInput(name, [1], dtype)
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        outputs = [grpcclient.InferRequestedOutput(name) for name in
                   ("text_output", *(flag.removeprefix("return_") for flag in USAGE_FLAGS))]
        self.request = {"model_name": "echo", "inputs": inputs, "outputs": outputs}
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.responses: Any = None

    async def _requests(self) -> Any:
        while (request := await self.queue.get()) is not None:
            yield request

    async def __call__(self) -> None:
        if self.responses is None:
            self.responses = self.client.stream_infer(self._requests()).__aiter__()
        self.queue.put_nowait(self.request)
        for index in range(3):
            result, error = await self.responses.__anext__()
            if error is not None:
                raise error
            final = result.get_response().parameters.get("triton_final_response")
            if final is not None and final.bool_param != (index == 2):
                raise RuntimeError("the echo answer did not end after 3 chunks")

    async def close(self) -> None:
        self.queue.put_nowait(None)
        await self.client.close()


class ClientStream:
    """promptops' InferenceClient, as the gateway calls it (a gRPC stream per request, usage flags)."""

    def __init__(self, client: InferenceClient) -> None:
        self.client = client

    async def __call__(self) -> None:
        chunks = [e async for e in self.client.stream("echo", ECHO_MESSAGE, ECHO_SAMPLING)
                  if isinstance(e, str)]
        if len(chunks) != 3:
            raise RuntimeError(f"expected 3 chunks, got {chunks}")


class HTTPStream:
    """One keep-alive HTTP/1.1 connection to the gateway; each call POSTs `body` and reads the chunked
    SSE answer to its end, handing every complete event's bytes to `on_event`."""

    def __init__(self, port: int, path: str, body: dict[str, Any]) -> None:
        self.port = port
        payload = json.dumps(body).encode()
        self.request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, on_event: Callable[[bytes], None]) -> None:
        if self.reader is None or self.reader.at_eof():  # uvicorn closes connections idle for 5 s
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        buffer = b""
        while True:  # chunked transfer encoding, to the terminating zero-size chunk
            size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                break
            buffer += data[:-2]
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                on_event(event)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class GatewayChat(HTTPStream):
    """`POST /v1/chat` streamed: token events, then `done`."""

    def __init__(self, port: int) -> None:
        super().__init__(port, "/v1/chat", {"prompt": "bench", "message": ECHO_MESSAGE, "stream": True})

    async def __call__(self) -> None:
        kinds: list[bytes] = []
        await self.send(lambda event: kinds.append(event.split(b"\n", 1)[0]))
        if kinds != [b"event: token"] * 3 + [b"event: done"]:
            raise RuntimeError(f"unexpected events {kinds}")


# -- echo measures -----------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Samples and counters of one path, added up over its slices."""

    samples: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    def p(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    @property
    def rps(self) -> float:
        return len(self.samples) / self.elapsed

    def us_per_request(self, *meters: str) -> float:
        return sum(self.cpu[meter] for meter in meters) / len(self.samples) * 1e6


async def run_slice(callers: list[Callable[[], Awaitable[None]]], seconds: float, meters: dict[str, CPU],
                    tally: Tally) -> None:
    before = {name: meter() for name, meter in meters.items()}
    stop = time.perf_counter() + seconds

    async def loop(call: Callable[[], Awaitable[None]]) -> None:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            await call()
            tally.samples.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in callers))
    tally.elapsed += time.perf_counter() - began
    for name, meter in meters.items():
        tally.cpu[name] = tally.cpu.get(name, 0.0) + meter() - before[name]


async def echo_measures(grpc_url: str, port: int, gateway_pid: int, triton_pid: int, clients: int,
                        seconds: float) -> dict[int, dict[str, Tally]]:
    """{clients: {path: Tally}} for 1 and `clients` clients; the paths take turns in ECHO_SLICES slices."""
    shared = InferenceClient(grpc_url)
    # Every process on every path (the gateway idles on the direct and client paths: its share is ~0).
    meters = {"load": CPU(os.getpid()), "gateway": CPU(gateway_pid), "triton": CPU(triton_pid, tree=True)}
    results: dict[int, dict[str, Tally]] = {}
    for count in sorted({1, clients}):
        callers: dict[str, list[Any]] = {
            "direct": [BareStream(grpc_url) for _ in range(count)],
            "client": [ClientStream(shared) for _ in range(count)],
            "gateway": [GatewayChat(port) for _ in range(count)]}
        for group in callers.values():  # warm-up: connections, channels, caches
            for call in group:
                for _ in range(20):
                    await call()
        tallies = {path: Tally() for path in callers}
        for _ in range(ECHO_SLICES):
            for path, group in callers.items():
                await run_slice(group, seconds / ECHO_SLICES, meters, tallies[path])
        for group in callers.values():
            for call in group:
                if hasattr(call, "close"):
                    await call.close()
        results[count] = tallies
    await shared.close()
    return results


# -- LLM measures ------------------------------------------------------------------------------------------


@dataclass
class Stream:
    ttft_s: float
    tokens: int
    total_s: float


class GatewayOpenAI(HTTPStream):
    """`POST /v1/chat/completions`, stream=true, include_usage: time to first content, `usage` tokens."""

    def __init__(self, port: int, max_tokens: int) -> None:
        super().__init__(port, "/v1/chat/completions", {
            "model": "story", "messages": [{"role": "user", "content": LLM_MESSAGE}], "stream": True,
            "stream_options": {"include_usage": True}, "temperature": 0, "max_tokens": max_tokens})

    async def __call__(self) -> Stream:
        start = time.perf_counter()
        first: float | None = None
        usage: dict[str, int] | None = None
        done = False

        def on_event(event: bytes) -> None:
            nonlocal first, usage, done
            data = event.removeprefix(b"data: ")
            if data == b"[DONE]":
                done = True
                return
            chunk = json.loads(data)
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
            if chunk.get("usage"):
                usage = chunk["usage"]
            if first is None and any(c["delta"].get("content") for c in chunk["choices"]):
                first = time.perf_counter() - start

        await self.send(on_event)
        if not done or usage is None or first is None:
            raise RuntimeError("the stream ended without content, usage or [DONE]")
        return Stream(first, usage["completion_tokens"], time.perf_counter() - start)


async def client_stream(client: InferenceClient, text: str, max_tokens: int) -> Stream:
    sampling = {**PROMPTS["story"]["config"], "max_tokens": max_tokens}
    start, first, tokens = time.perf_counter(), None, None
    async for event in client.stream(LLM_MODEL, text, sampling):
        if not isinstance(event, str):
            tokens = event.completion_tokens
        elif first is None:
            first = time.perf_counter() - start
    assert first is not None and tokens is not None
    return Stream(first, tokens, time.perf_counter() - start)


@dataclass
class LLMResult:
    ttft_s: list[float] = field(default_factory=list)  # single streams
    tokens_per_s: list[float] = field(default_factory=list)  # one per batch
    tokens: int = 0  # over all batches
    cpu_s: float = 0.0  # the process talking to Triton, over all batches


def engine_result(data: dict[str, Any]) -> LLMResult:
    result = LLMResult(ttft_s=[first for first, _, _ in data["single"]])
    for batch in data["batches"]:
        tokens = sum(count for _, count, _ in batch["streams"])
        result.tokens_per_s.append(tokens / batch["wall"])
        result.tokens += tokens
    return result


async def llm_measures(grpc_url: str, port: int, gateway_pid: int, text: str, streams: int
                       ) -> dict[str, LLMResult]:
    """Through Triton: the promptops client and the gateway, taking turns."""
    client = InferenceClient(grpc_url, timeout_s=600)
    meters = {"client": CPU(os.getpid()), "gateway": CPU(gateway_pid)}
    results = {"client": LLMResult(), "gateway": LLMResult()}

    def calls(path: str, max_tokens: int) -> list[Callable[[], Awaitable[Stream]]]:
        if path == "client":
            return [lambda: client_stream(client, text, max_tokens) for _ in range(streams)]
        return [GatewayOpenAI(port, max_tokens) for _ in range(streams)]

    for path in results:  # warm-up
        for call in calls(path, TTFT_TOKENS)[:2]:
            await call()
    singles = {path: calls(path, TTFT_TOKENS)[0] for path in results}
    for _ in range(TTFT_RUNS):
        for path, call in singles.items():
            results[path].ttft_s.append((await call()).ttft_s)
    batches = {path: calls(path, LLM_TOKENS) for path in results}
    for _ in range(LLM_ROUNDS):
        for path, group in batches.items():
            before = meters[path]()
            started = time.perf_counter()
            done = await asyncio.gather(*(call() for call in group))
            wall = time.perf_counter() - started
            results[path].cpu_s += meters[path]() - before
            tokens = sum(s.tokens for s in done)
            if any(s.tokens != LLM_TOKENS for s in done):
                raise RuntimeError(f"{path}: streams of {[s.tokens for s in done]} tokens, not {LLM_TOKENS}")
            results[path].tokens_per_s.append(tokens / wall)
            results[path].tokens += tokens
    for group in [*batches.values(), list(singles.values())]:
        for call in group:
            if isinstance(call, HTTPStream):
                await call.close()
    await client.close()
    return results


# -- processes ---------------------------------------------------------------------------------------------


def wait_http(port: int, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the gateway did not start")


class Served:
    """Triton (the real launcher) for `models` plus `promptops serve --no-ui` on it, for a `with` block."""

    def __init__(self, tmp: Path, name: str, repositories: list[Path], models: list[str], clients: int) -> None:
        http, grpc, metrics, self.port = triton.free_ports(4)
        self.config = triton.TritonConfig(model_repositories=repositories, models=models, http_port=http,
                                          grpc_port=grpc, metrics_port=metrics, runtime_dir=tmp / name)
        self.repo, self.clients = tmp / "repo", clients
        self.gateway: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Served:
        status = triton.up(self.config, timeout=600)
        assert status.pid is not None
        self.triton_pid = status.pid
        # Loopback: generation is open without a credential (docs/security.md); the per-caller limit
        # (default 8 in flight) is raised only when more clients than that are asked for.
        env = {**os.environ, "PROMPTOPS_REPO": str(self.repo),
               "PROMPTOPS_MAX_CONCURRENT": str(max(8, self.clients))}
        self.gateway = subprocess.Popen([sys.executable, "-m", "promptops", "serve", "--no-ui", "--port",
                                         str(self.port), "--triton-url", self.config.grpc_url], env=env, cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.gateway is not None:
            self.gateway.terminate()
            self.gateway.wait(timeout=30)
        triton.down(self.config)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# -- the table ---------------------------------------------------------------------------------------------


def pct_row(name: str, values: tuple[float, float, float], fmt: str, target: float | None) -> list[str]:
    direct, client, gateway = values
    ratio = gateway / direct * 100
    return [name, format(direct, fmt), format(client, fmt), format(gateway, fmt), f"{ratio:.0f} %",
            f"{gateway / client * 100:.0f} %", "" if target is None else f">= {target:.0f} %",
            "" if target is None else ("yes" if ratio >= target else "NO")]


def diff_row(name: str, values: tuple[float | None, float, float], fmt: str, unit: str,
             target: float | None) -> list[str]:
    direct, client, gateway = values
    added = None if direct is None else gateway - direct
    return [name, "-" if direct is None else format(direct, fmt), format(client, fmt), format(gateway, fmt),
            "-" if added is None else f"{added:+{fmt}} {unit}", f"{gateway - client:+{fmt}} {unit}",
            "" if target is None else f"<= +{target:g} {unit}",
            "" if target is None or added is None else ("yes" if added <= target else "NO")]


def echo_rows(results: dict[int, dict[str, Tally]]) -> list[list[str]]:
    rows = []
    for count, t in results.items():
        paths = (t["direct"], t["client"], t["gateway"])
        one = count == 1
        clients = f"echo, {count} client{'s' * (not one)}"
        rows.append(diff_row(f"{clients}: p50 latency", tuple(x.p(0.5) for x in paths), ".2f", "ms",
                             0.5 if one else None))
        rows.append(diff_row(f"{clients}: p99 latency", tuple(x.p(0.99) for x in paths), ".2f", "ms", None))
        rows.append(pct_row(f"{clients}: requests/s", tuple(x.rps for x in paths), ".0f", None if one else 80))
        # The process that talks to Triton: the load generator (direct, client), or the gateway.
        callers = (t["direct"].us_per_request("load"), t["client"].us_per_request("load"),
                   t["gateway"].us_per_request("gateway"))
        row = diff_row(f"{clients}: CPU/request, process calling Triton", callers, ".0f", "us", None)
        row[-2:] = [f"<= {GATEWAY_CPU_US} us (gateway)", "yes" if callers[2] <= GATEWAY_CPU_US else "NO"]
        rows.append(row)
        rows.append(diff_row(f"{clients}: CPU/request, Triton + its stubs",
                             tuple(x.us_per_request("triton") for x in paths), ".0f", "us", None))
        rows.append(diff_row(f"{clients}: CPU/request, all processes",
                             tuple(x.us_per_request("load", "gateway", "triton") for x in paths), ".0f", "us", None))
    return rows


def llm_rows(engine: LLMResult, through: dict[str, LLMResult], streams: int) -> list[list[str]]:
    client, gateway = through["client"], through["gateway"]
    med = statistics.median
    rates = (med(engine.tokens_per_s), med(client.tokens_per_s), med(gateway.tokens_per_s))
    through_triton, through_gateway = rates[1] / rates[0] * 100, rates[2] / rates[1] * 100
    return [
        pct_row(f"LLM, {streams} streams x {LLM_TOKENS} tokens: tokens/s", rates, ".1f", None),
        ["  tokens/s through Triton (promptops client) vs the engine alone", "", "", "", f"{through_triton:.0f} %",
         "", ">= 95 %", "yes" if through_triton >= 95 else "NO"],
        ["  tokens/s through the gateway vs the promptops client", "", "", "", "", f"{through_gateway:.0f} %",
         ">= 95 %", "yes" if through_gateway >= 95 else "NO"],
        diff_row(f"LLM, 1 stream: time to first token (p50 of {TTFT_RUNS})",
                 (med(engine.ttft_s) * 1000, med(client.ttft_s) * 1000, med(gateway.ttft_s) * 1000),
                 ".1f", "ms", 5),
        diff_row(f"LLM, {streams} streams: CPU/token, process calling Triton",
                 (None, client.cpu_s / client.tokens * 1e6, gateway.cpu_s / gateway.tokens * 1e6),
                 ".0f", "us", None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per echo path and client count")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (echo) and streams (LLM)")
    parser.add_argument("--skip-llm", action="store_true", help="only the echo rows (no vLLM; ~1 minute)")
    args = parser.parse_args()
    loads = [load()]
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="promptops-bench-") as name:
        tmp = Path(name)
        make_repo(tmp / "repo")
        with Served(tmp, "echo", [ROOT / "tests" / "model_repository"], ["echo"], args.clients) as served:
            assert served.gateway is not None
            rows += echo_rows(asyncio.run(echo_measures(served.config.grpc_url, served.port, served.gateway.pid,
                                                        served.triton_pid, args.clients, args.seconds)))
        loads.append(load())
        if not args.skip_llm:
            from serving import run_engine_direct

            text = PROMPTS["story"]["template"].replace("{user}", LLM_MESSAGE)
            engine = engine_result(run_engine_direct(LLM_TOKENS, TTFT_RUNS, streams=args.clients,
                                                     rounds=LLM_ROUNDS, prompt=text, single_tokens=TTFT_TOKENS))
            loads.append(load())
            with Served(tmp, "llm", [ROOT / "model_repository"], [LLM_MODEL], args.clients) as served:
                assert served.gateway is not None
                through = asyncio.run(llm_measures(served.config.grpc_url, served.port, served.gateway.pid,
                                                   text, args.clients))
            rows += llm_rows(engine, through, args.clients)
            loads.append(load())
    print_table(f"gateway cost: {os.cpu_count()} CPUs, echo {args.seconds:g} s per path and client count; "
                f"load average (1/5/15 min) {' -> '.join(loads)}",
                ("measure", "direct", "promptops client", "gateway", "gateway vs direct", "gateway vs client",
                 "target", "met"), rows)
    print("direct: echo = bare tritonclient.grpc.aio stream, LLM = vLLM engine in-process, alone. promptops client: "
          "InferenceClient.stream (what the gateway calls). CPU: utime+stime; 'process calling Triton' = "
          "the load generator (direct, client) or the gateway process. Tokens: the model's own counts (usage).")


if __name__ == "__main__":
    main()
