"""Start-up and validation speed, with their targets: `promptops --help`, and `promptops validate` against
`check-jsonschema` on the same 1,000 and 10,000 prompt files.

Every figure is the median wall time of whole processes, the commands taking turns so that a change in the
machine's load hits both alike. The target is `.venv/bin/promptops`, the installed console script (here an
editable install: its import finder shows in `-X importtime`, but the modules it imports are typer's too, and
the same start with sys.path set by hand is within ~2 ms); `python -m promptops` and bare `python` are shown
beside it. Byte code is compiled before measuring (a warm-up run with PYTHONDONTWRITEBYTECODE unset), as it
is for an installed package: otherwise every edited module is recompiled on every run.

`promptops validate DIR` runs as in a checkout, in the files' own folder, so its stat cache
(.promptops/cache/) is there; "warm" is the command as a user runs it a second time (files unchanged),
"--no-cache" checks every file. check-jsonschema gets the schema file and every file's path.

Run: .venv/bin/python benchmarks/validate.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table, time_command  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROMPTOPS = str(BIN / "promptops")
HELP_MS = 80  # `promptops --help`, median of 10 (docs/architecture.md "Speed")
RATIO = 5.0  # check-jsonschema's time over `promptops validate`'s, on the same files
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def make_files(directory: Path, count: int = 1000) -> list[Path]:
    files = []
    for i in range(count):
        doc = {"config": {"temperature": "0.7", "top_p": "0.95", "max_tokens": str(64 + i % 100)},
               "system": f"You are assistant number {i}.", "user": "", "template": "{system}\n{user}"}
        path = directory / f"prompt-{i:05d}.json"
        path.write_text(json.dumps(doc, indent=2))
        files.append(path)
    return files


def medians(commands: dict[str, tuple[list[str], int]], **kwargs: object) -> dict[str, float]:
    """Median seconds per command; the commands take turns (each run once, warm-up not counted)."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for argv, _ in commands.values():
        subprocess.run(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, **kwargs)
    for turn in range(max(runs for _, runs in commands.values())):
        for name, (argv, runs) in commands.items():
            if turn < runs:
                samples[name].append(time_command(argv, runs=1, env=ENV, **kwargs))
    return {name: statistics.median(values) for name, values in samples.items()}


def import_costs() -> str:
    """What `promptops --help` imports, from one `python -X importtime` run (cumulative microseconds)."""
    result = subprocess.run([sys.executable, "-X", "importtime", PROMPTOPS, "--help"], env=ENV, text=True,
                            capture_output=True, check=True)
    cumulative = {m.group(2).strip(): int(m.group(1))
                  for m in re.finditer(r"import time:\s+\d+ \|\s+(\d+) \|(.*)", result.stderr)}
    ours = sorted(name for name in cumulative if name.startswith("promptops"))
    framework = cumulative.get("typer", 0) + cumulative.get("click", 0)  # each listed once, where first imported
    return (f"--help imports (python -X importtime, one run, inflated by the tracing): typer + click "
            f"{framework / 1000:.0f} ms, promptops.cli.app without them "
            f"{(cumulative['promptops.cli.app'] - framework) / 1000:.0f} ms; "
            f"promptops modules: {', '.join(ours)}; rich: {'yes' if 'rich' in cumulative else 'no'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="prompt files per run")
    args = parser.parse_args()
    start = medians({"promptops --help": ([PROMPTOPS, "--help"], 10),
                     "python -m promptops --help": ([sys.executable, "-m", "promptops", "--help"], 10),
                     "python -c pass": ([sys.executable, "-c", "pass"], 10)}, cwd=ROOT)
    help_ms = start["promptops --help"] * 1000
    rows = [["promptops --help (the installed command)", f"{help_ms:.0f} ms", f"<= {HELP_MS} ms",
             "yes" if help_ms <= HELP_MS else "NO"],
            ["  python -m promptops --help", f"{start['python -m promptops --help'] * 1000:.0f} ms", "", ""],
            ["  python -c pass (the interpreter alone)", f"{start['python -c pass'] * 1000:.0f} ms", "", ""]]
    for count in args.sizes:
        runs = 10 if count <= 1000 else 5
        with tempfile.TemporaryDirectory(prefix="promptops-bench-") as tmp:
            folder = Path(tmp) / "prompts"
            folder.mkdir()
            files = make_files(folder, count)
            took = medians({
                "warm": ([PROMPTOPS, "validate", "prompts"], runs),
                "cold": ([PROMPTOPS, "validate", "--no-cache", "prompts"], runs),
                "theirs": ([str(BIN / "check-jsonschema"), "--schemafile", str(ROOT / "schemas/prompt.schema.json"),
                            *map(str, files)], max(3, runs // 2)),
            }, cwd=tmp)
        ratio = took["theirs"] / took["warm"]
        rows += [[f"validate {count:,} files: check-jsonschema / promptops validate", f"{ratio:.1f}x",
                  f">= {RATIO:g}x", "yes" if ratio >= RATIO else "NO"],
                 ["  promptops validate (stat cache warm)", f"{took['warm'] * 1000:.0f} ms", "", ""],
                 ["  promptops validate --no-cache (every file checked)",
                  f"{took['cold'] * 1000:.0f} ms ({took['theirs'] / took['cold']:.1f}x)", "", ""],
                 ["  check-jsonschema --schemafile", f"{took['theirs'] * 1000:.0f} ms", "", ""]]
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print_table(f"start-up and validate: {os.cpu_count()} CPUs, load average (1/5/15 min) {load}; median wall time "
                "of whole processes", ("measure", "figure", "target", "met"), rows)
    print(import_costs())


if __name__ == "__main__":
    main()
