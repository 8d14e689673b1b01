"""Benchmark: `promptops log NAME` vs `git log -- file`, and warm in-process `resolve("name@N")`.

Builds (once, with `git fast-import`) a repository of 10,000 commits over 200 prompts, then
prints one table. Usage: `python benchmarks/versions.py [--repo DIR] [--runs 9]`.
Targets: `promptops log` within 1.2x of `git log`; warm resolve <= 50 us (NAME@N, NAME@LABEL, bare NAME
via its production label).
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
    release(path)


def release(path: Path) -> None:
    """Approve NAME v2 and commit labels.json (production -> v2, staging -> v3), as a team would."""
    env = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "Bench",
           "GIT_COMMITTER_EMAIL": "b@example.com", "PATH": "/usr/bin:/bin"}
    second = subprocess.run(["git", "log", "--reverse", "--format=%H", "--", f"prompts/{NAME}.json"], cwd=path,
                            check=True, capture_output=True, text=True, env=env).stdout.split()[1]
    subprocess.run(["git", "tag", "-a", "-m", "ok", f"prompts/{NAME}/v2", second], cwd=path, check=True, env=env)
    labels = {"protected": ["production"], "labels": {NAME: {"production": 2, "staging": 3}}}
    (path / "labels.json").write_text(json.dumps(labels, indent=2) + "\n")
    subprocess.run(["git", "add", "labels.json"], cwd=path, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "labels"], cwd=path, check=True, env=env)


def median_ms(command: list[str], cwd: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def warm_resolve_us(repo: Path, ref: str, loops: int = 20_000) -> float:
    from promptops.store import PromptStore

    store = PromptStore(repo)
    store.resolve(ref)
    best = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(loops):
            store.resolve(ref)
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
    resolves = {ref: warm_resolve_us(repo, ref) for ref in (f"{NAME}@3", f"{NAME}@staging", NAME)}
    rows = [("git log --oneline -- prompts/NAME.json", f"{git_ms:.0f} ms", "1.00x", ""),
            ("promptops log NAME (first run, no cache)", f"{cold:.0f} ms", f"{cold / git_ms:.2f}x", ""),
            ("promptops log NAME (median)", f"{ours:.0f} ms", f"{ours / git_ms:.2f}x", "target <= 1.20x"),
            *((f'warm resolve("{ref.replace(NAME, "NAME")}") in-process', f"{us:.1f} us", "", "target <= 50 us")
              for ref, us in resolves.items())]
    print(f"{'measure':<44}{'time':>10}{'vs git':>9}  note")
    for label, value, ratio, note in rows:
        print(f"{label:<44}{value:>10}{ratio:>9}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
