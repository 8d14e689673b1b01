"""Gateway overhead: a tiny streamed request through the gateway (SSE) vs straight to Triton over gRPC.

Both sides stream the same 3-chunk answer from the echo model in the same Triton:
- direct:  promptops.inference.InferenceClient.stream (tritonclient's gRPC stub; the gateway's own floor)
- gateway: POST /v1/chat {"stream": true} to `promptops serve --no-ui` in its own process, read with a
  minimal keep-alive HTTP/1.1 client (so the numbers are the gateway's, not an HTTP library's).
Latency is send-to-last-event per request; each client runs its requests back to back.
Targets: gateway adds <= 0.5 ms p50, keeps >= 80 % of direct throughput at 8 clients.

Run: .venv/bin/python benchmarks/gateway.py [--seconds 5]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promptops import triton  # noqa: E402
from promptops.inference import InferenceClient  # noqa: E402

MESSAGE = "a b c"  # the echo model answers it in 3 chunks
PROMPT = {"config": {"max_tokens": 16}, "template": "{user}"}
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@localhost", "GIT_CONFIG_NOSYSTEM": "1"}


def make_repo(path: Path) -> None:
    """A repository with one approved prompt, `bench`."""
    env = {**os.environ, **GIT_ENV}
    (path / "prompts").mkdir(parents=True)
    (path / "prompts" / "bench.json").write_text(json.dumps(PROMPT))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"],
                 ["tag", "-a", "-m", "ok", "prompts/bench/v1"]):
        subprocess.run(["git", *args], cwd=path, check=True, env=env)


class SSEClient:
    """One keep-alive HTTP/1.1 connection reading a chunked SSE answer up to its `done` event."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        body = json.dumps({"prompt": "bench", "message": MESSAGE, "stream": True}).encode()
        self.request = (f"POST /v1/chat HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __call__(self) -> None:
        if self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        body = b""
        while True:  # chunked transfer encoding, to the terminating zero-size chunk
            size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
        if b"event: done" not in body:
            raise RuntimeError(body.decode(errors="replace"))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def measure(make: Callable[[], Callable[[], Awaitable[None]]], clients: int, seconds: float) -> dict[str, float]:
    """Run `clients` loops of back-to-back requests for `seconds`; latency percentiles and requests/s."""
    callers = [make() for _ in range(clients)]
    for call in callers:  # warm-up: connections, channels, caches
        for _ in range(20):
            await call()
    samples: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop(call: Callable[[], Awaitable[None]]) -> None:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in callers))
    elapsed = time.perf_counter() - began
    for call in callers:
        if hasattr(call, "close"):
            await call.close()
    samples.sort()
    return {"p50": statistics.median(samples) * 1000, "p99": samples[int(len(samples) * 0.99) - 1] * 1000,
            "rps": len(samples) / elapsed}


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


async def run(grpc_url: str, port: int, seconds: float) -> list[list[str]]:
    client = InferenceClient(grpc_url)

    def direct() -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            chunks = [t async for t in client.stream("echo", MESSAGE, {"max_tokens": 16})]
            assert len(chunks) == 3

        return call

    rows = []
    for clients in (1, 8):
        bare = await measure(direct, clients, seconds)
        via = await measure(lambda: SSEClient("127.0.0.1", port), clients, seconds)
        for label, result in (("direct gRPC", bare), ("gateway SSE", via)):
            rows.append([str(clients), label, f"{result['p50']:.2f}", f"{result['p99']:.2f}", f"{result['rps']:.0f}",
                         "" if result is bare else f"+{via['p50'] - bare['p50']:.2f} ms p50, "
                                                   f"{100 * via['rps'] / bare['rps']:.0f} % of direct rps"])
    await client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        http, grpc, metrics, port = triton.free_ports(4)
        config = triton.TritonConfig(model_repositories=[ROOT / "tests" / "model_repository"], models=["echo"],
                                     http_port=http, grpc_port=grpc, metrics_port=metrics,
                                     runtime_dir=Path(tmp) / "triton")
        make_repo(Path(tmp) / "repo")
        triton.up(config, timeout=120)
        env = {**os.environ, "PROMPTOPS_REPO": str(Path(tmp) / "repo"), "PROMPTOPS_MODEL": "echo"}
        gateway = subprocess.Popen([sys.executable, "-m", "promptops", "serve", "--no-ui", "--port", str(port),
                                    "--triton-url", config.grpc_url], env=env, cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(port)
            rows = asyncio.run(run(config.grpc_url, port, args.seconds))
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
            triton.down(config)
    print_table(f"tiny streamed request (3 chunks, echo model), {os.cpu_count()} CPUs, {args.seconds:.0f} s per row",
                ("clients", "path", "p50 ms", "p99 ms", "req/s", "gateway overhead"), rows)
    print("targets: gateway adds <= 0.5 ms p50; keeps >= 80 % of direct req/s at 8 clients")


if __name__ == "__main__":
    main()
