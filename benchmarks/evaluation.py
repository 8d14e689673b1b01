"""`promptops test` throughput: cases per second of a 200-row dataset at concurrency 1 and 8.

A real Triton serving the deterministic echo model (tests/model_repository); the runner reads the
JSONL dataset streaming, sends each case through the chat pipeline and scores it with two assertions
(`contains`, `levenshtein`). Two workloads: the echo answering at once (what the runner and Triton
cost per case) and the echo waiting 5 ms per token (~45 ms an answer, a stand-in for model time,
where concurrency pays off).

Run: .venv/bin/python benchmarks/evaluation.py [--rows 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

from promptops.evaluation.assertions import Tools  # noqa: E402
from promptops.evaluation.runner import Target, run_tests  # noqa: E402
from promptops.prompt.model import Prompt  # noqa: E402
from promptops.triton import launcher as triton  # noqa: E402
from promptops.triton.client import InferenceClient  # noqa: E402

ECHO_REPOSITORY = triton.REPO_ROOT / "tests" / "model_repository"


def write_dataset(repo: Path, rows: int) -> None:
    folder = repo / "prompts" / "datasets"
    folder.mkdir(parents=True)
    with (folder / "bench.jsonl").open("w") as out:
        for i in range(rows):
            question = f"question number {i} about the weather in Berlin today"
            out.write(json.dumps({"user": question, "__expected": "contains: Berlin",
                                  "__expected2": f"levenshtein: {question}"}) + "\n")


def prompt(delay_ms: float) -> Prompt:
    # Built directly (not from a file): the echo's `delay_ms` knob is no sampling key the schema knows.
    config = {"temperature": 0, **({"delay_ms": delay_ms} if delay_ms else {})}
    return Prompt("bench", {"config": config, "template": "{user}", "model": "echo",
                            "tests": [{"dataset": "datasets/bench.jsonl"}]}, config)


async def cases_per_second(url: str, repo: Path, delay_ms: float, concurrency: int) -> tuple[int, float, float]:
    async with InferenceClient(url) as client:
        started = time.perf_counter()
        [run] = await run_tests(client, [Target(prompt(delay_ms))], "echo", concurrency=concurrency,
                                tools=Tools(repo))
        seconds = time.perf_counter() - started
    assert run.pass_rate == 1.0, [c.name for c in run.cases if not c.passed][:5]
    return len(run.cases), seconds, len(run.cases) / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="promptops-eval-bench-") as tmp:
        repo = Path(tmp)
        write_dataset(repo, args.rows)
        http, grpc, metrics = triton.free_ports(3)
        config = triton.TritonConfig(model_repositories=[ECHO_REPOSITORY], models=["echo"], http_port=http,
                                     grpc_port=grpc, metrics_port=metrics, runtime_dir=repo / "runtime")
        triton.up(config, timeout=300)
        try:
            asyncio.run(cases_per_second(config.grpc_url, repo, 0, 2))  # warm up the channel and the model
            rows = []
            for label, delay in (("echo, instant", 0.0), ("echo, 5 ms a token", 5.0)):
                for concurrency in (1, 8):
                    cases, seconds, rate = asyncio.run(cases_per_second(config.grpc_url, repo, delay, concurrency))
                    rows.append((label, concurrency, cases, f"{seconds:.2f}", f"{rate:.0f}"))
        finally:
            triton.down(config)
    print_table(f"promptops test: a {args.rows}-row JSONL dataset, 2 assertions a case (real Triton, echo model)",
                ("model", "concurrency", "cases", "seconds", "cases/s"), rows)


if __name__ == "__main__":
    main()
