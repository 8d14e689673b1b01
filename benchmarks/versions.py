"""Benchmark: `promptops log NAME` vs `git log -- file`, and warm in-process `resolve("name@N")`.

Builds (once, with `git fast-import`) a repository of 10,000 commits over 200 prompts, then
prints one table. Usage: `python benchmarks/versions.py [--repo DIR] [--runs 9]`.
Targets: `promptops log` within 1.2x of `git log`; warm resolve <= 50 us.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMITS, PROMPTS, NAME = 10_000, 200, "p0007"


def build(path: Path, commits: int = COMMITS, prompts: int = PROMPTS) -> None:
    """A linear history: every commit edits one prompt (each prompt first, then at random)."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    rnd = random.Random(7)
    stream = []
    for i in range(commits):
        n = i if i < prompts else rnd.randrange(prompts)
        doc = {"config": {"temperature": "0.7", "max_tokens": "256"}, "system": f"You are helper {n}.",
               "user": "", "note": f"rev {i}", "template": "{system}{note}{user}"}
        data = (json.dumps(doc, indent=2) + "\n").encode()
        msg = f"edit p{n:04d} ({i})\n".encode()
        stream.append(b"commit refs/heads/main\nmark :%d\ncommitter Bench <b@example.com> %d +0000\ndata %d\n%s"
                      % (i + 1, 1_700_000_000 + i * 60, len(msg), msg))
        if i:
            stream.append(b"from :%d\n" % i)
        stream.append(b"M 100644 inline prompts/p%04d.json\ndata %d\n%s\n" % (n, len(data), data))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=b"".join(stream), check=True)
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=path, check=True)


def median_ms(command: list[str], cwd: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def warm_resolve_us(repo: Path, loops: int = 20_000) -> float:
    from promptops.store import PromptStore

    store = PromptStore(repo)
    store.resolve(f"{NAME}@3")
    best = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(loops):
            store.resolve(f"{NAME}@3")
        best.append((time.perf_counter() - start) / loops)
    return statistics.median(best) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, help="reuse/build the repository here (default: a temp dir)")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    repo = args.repo or Path(tempfile.mkdtemp(prefix="promptops-bench-"))
    if not (repo / ".git").exists():
        start = time.perf_counter()
        build(repo)
        print(f"built {COMMITS:,} commits over {PROMPTS} prompts in {time.perf_counter() - start:.1f} s: {repo}")
    promptops = [sys.executable, "-m", "promptops", "log", NAME]
    shutil.rmtree(repo / ".git" / "promptops", ignore_errors=True)
    cold = median_ms(promptops, repo, 1)
    git_ms = median_ms(["git", "log", "--oneline", "--", f"prompts/{NAME}.json"], repo, args.runs)
    ours = median_ms(promptops, repo, args.runs)
    resolve = warm_resolve_us(repo)
    rows = [("git log --oneline -- prompts/NAME.json", f"{git_ms:.0f} ms", "1.00x", ""),
            ("promptops log NAME (first run, no cache)", f"{cold:.0f} ms", f"{cold / git_ms:.2f}x", ""),
            ("promptops log NAME (median)", f"{ours:.0f} ms", f"{ours / git_ms:.2f}x", "target <= 1.20x"),
            ('warm resolve("NAME@N") in-process', f"{resolve:.1f} us", "", "target <= 50 us")]
    print(f"{'measure':<44}{'time':>10}{'vs git':>9}  note")
    for label, value, ratio, note in rows:
        print(f"{label:<44}{value:>10}{ratio:>9}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
