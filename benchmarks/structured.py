"""Structured outputs on the embedded model: the same prompt with and without the contract enforced.

A chat prompt whose `response_format` is a JSON Schema (`{"answer": string, "confidence": number 0..1,
"topic": one of five}`) answers the 50 questions of benchmarks/data/structured.jsonl on SmolLM2-135M
(the CPU `vllm` backend inside a real Triton), in two modes, one request at a time, the two modes
taking turns question by question so that both see the same machine:

- enforced: the request as the chat pipeline prepares it (`promptops.chat.prepare`): its sampling
  parameters carry `structured_outputs`, so vLLM decodes under the schema's grammar;
- free: the same rendered text and sampling parameters without `structured_outputs`; the system
  message still describes the JSON wanted.

Each answer is checked with `Contract.read` (promptops.evaluation.runner.structure: parses as JSON,
validates against the schema). Tokens are the model's own counts; times are the client's clock (time to
first token and total per request, tokens/s = answer tokens / total seconds over all requests). One
request per mode runs first as a warm-up and is left out (the first enforced one compiles the grammar;
its time to first token is printed apart).

Run: .venv/bin/python benchmarks/structured.py [--rows 50] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

from promptops import chat  # noqa: E402
from promptops.evaluation.runner import structure  # noqa: E402
from promptops.prompt.model import Prompt, normalise_config  # noqa: E402
from promptops.triton import launcher as triton  # noqa: E402
from promptops.triton.client import Answer, InferenceClient  # noqa: E402

MODEL = "smollm2-135m"
DATA = Path(__file__).parent / "data" / "structured.jsonl"
TOPICS = ["geography", "science", "math", "history", "food"]
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["answer", "confidence", "topic"],
          "properties": {"answer": {"type": "string"},
                         "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                         "topic": {"enum": TOPICS}}}
SYSTEM = ("Answer the question with only a JSON object, no other text: "
          '{"answer": "<a short answer>", "confidence": <a number from 0 to 1>, '
          f'"topic": "<one of {", ".join(TOPICS)}>"}}')
MODES = ("enforced", "free")
Results = dict[str, list[tuple[Answer, tuple[bool, bool]]]]
"""Per mode, each answer with (parsed, valid)."""


def prompt(max_tokens: int) -> Prompt:
    config = {"temperature": 0, "max_tokens": max_tokens}
    document = {"model": MODEL, "config": config, "system": SYSTEM,
                "messages": [{"role": "system", "content": "{system}"}, {"role": "user", "content": "{user}"}],
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}}
    return Prompt("structured", document, normalise_config(config))


def requests(question: str, max_tokens: int) -> dict[str, chat.Prepared]:
    """The two requests of one question: as the pipeline prepares it, and the same without the constraint."""
    enforced = chat.prepare(prompt(max_tokens), question, default_model=MODEL)
    if "structured_outputs" not in enforced.sampling:
        raise SystemExit("chat.prepare did not put the contract in the sampling parameters (structured_outputs)")
    free = {k: v for k, v in enforced.sampling.items() if k != "structured_outputs"}
    return {"enforced": enforced, "free": dataclasses.replace(enforced, sampling=free)}


async def measure(url: str, questions: list[str], max_tokens: int) -> tuple[Results, dict[str, float]]:
    """Every question in both modes, and each mode's warm-up time to first token."""
    contract = prompt(max_tokens).contract
    results: Results = {mode: [] for mode in MODES}
    warm: dict[str, float] = {}
    async with InferenceClient(url, timeout_s=600) as client:
        for mode, prepared in requests("What is the capital of Italy?", max_tokens).items():
            warm[mode] = (await chat.complete(client, prepared)).ttft_s or 0.0
        for index, question in enumerate(questions):
            prepared = requests(question, max_tokens)
            for mode in MODES if index % 2 == 0 else reversed(MODES):
                answer = await chat.complete(client, prepared[mode])
                results[mode].append((answer, structure(contract, answer.text) or (False, False)))
    return results, warm


def row(mode: str, results: list[tuple[Answer, tuple[bool, bool]]]) -> tuple[str, ...]:
    count = len(results)
    parsed = sum(1 for _, (ok, _) in results if ok)
    valid = sum(1 for _, (_, ok) in results if ok)
    tokens = sum(a.completion_tokens for a, _ in results)
    seconds = sum(a.total_s for a, _ in results)
    ttft = statistics.median(a.ttft_s or 0.0 for a, _ in results)
    total = statistics.median(a.total_s for a, _ in results)
    cut = sum(1 for a, _ in results if a.finish_reason == "length")
    return (mode, f"{parsed}/{count} ({parsed / count:.0%})", f"{valid}/{count} ({valid / count:.0%})",
            f"{tokens / seconds:.1f}", f"{ttft * 1000:.0f}", f"{total * 1000:.0f}", f"{tokens / count:.1f}",
            str(cut))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50, help="Questions to ask (of the 50 in the dataset).")
    parser.add_argument("--max-tokens", type=int, default=96, help="max_tokens of every request.")
    parser.add_argument("--samples", type=Path, help="Write every answer here (JSONL) to read them.")
    args = parser.parse_args(argv)
    questions = [json.loads(line)["user"] for line in DATA.read_text().splitlines() if line.strip()][:args.rows]

    http, grpc_port, metrics = triton.free_ports(3)
    config = triton.TritonConfig(model_repositories=[triton.REPO_ROOT / "model_repository"], models=[MODEL],
                                 http_port=http, grpc_port=grpc_port, metrics_port=metrics,
                                 runtime_dir=Path(tempfile.mkdtemp(prefix="promptops-structured-")))
    started = time.monotonic()
    triton.up(config, timeout=300)
    print(f"Triton + vLLM ready in {time.monotonic() - started:.1f} s", flush=True)
    try:
        started = time.monotonic()
        results, warm = asyncio.run(measure(config.grpc_url, questions, args.max_tokens))
        wall = time.monotonic() - started
    finally:
        triton.down(config)

    if args.samples:
        with args.samples.open("w") as out:
            for mode in MODES:
                for question, (answer, (parsed, valid)) in zip(questions, results[mode], strict=True):
                    out.write(json.dumps({"mode": mode, "question": question, "answer": answer.text,
                                          "parsed": parsed, "valid": valid,
                                          "finish_reason": answer.finish_reason}) + "\n")
    print_table(f"Structured outputs: {len(questions)} questions x 2 modes on {MODEL} via Triton "
                f"(1 stream, temperature 0, max_tokens {args.max_tokens}; {wall:.0f} s)",
                ("mode", "parses", "validates", "tokens/s", "TTFT p50 ms", "total p50 ms", "answer tokens (mean)",
                 "cut at max_tokens"),
                [row(mode, results[mode]) for mode in MODES])
    print(f"\nwarm-up request, time to first token: enforced {warm['enforced'] * 1000:.0f} ms "
          f"(grammar compiled), free {warm['free'] * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
