"""Validate 1,000 prompt files: `promptops validate` vs `check-jsonschema`, and `promptops --help` start-up.

Run: .venv/bin/python benchmarks/validate.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table, time_command  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def make_files(directory: Path, count: int = 1000) -> list[Path]:
    files = []
    for i in range(count):
        doc = {"config": {"temperature": "0.7", "top_p": "0.95", "max_tokens": str(64 + i % 100)},
               "system": f"You are assistant number {i}.", "user": "", "template": "{system}\n{user}"}
        path = directory / f"prompt-{i:04d}.json"
        path.write_text(json.dumps(doc, indent=2))
        files.append(path)
    return files


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp))
        ours = time_command([str(BIN / "promptops"), "validate", tmp], runs=5)
        cold = time_command([str(BIN / "promptops"), "validate", "--no-cache", tmp], runs=5)
        theirs = time_command([str(BIN / "check-jsonschema"), "--schemafile", str(ROOT / "schemas/prompt.schema.json"),
                               *map(str, files)], runs=3)
    help_time = time_command([str(BIN / "promptops"), "--help"], runs=10)
    print_table("validate 1,000 files (median wall time, whole process)", ("command", "seconds", "vs promptops"), [
        ("promptops validate (stat cache warm)", f"{ours:.3f}", "1.0x"),
        ("promptops validate --no-cache", f"{cold:.3f}", f"{cold / ours:.1f}x"),
        ("check-jsonschema --schemafile", f"{theirs:.3f}", f"{theirs / ours:.1f}x slower"),
    ])
    print_table("start-up", ("command", "ms", "target"), [("promptops --help", f"{help_time * 1000:.0f}", "< 150")])


if __name__ == "__main__":
    main()
