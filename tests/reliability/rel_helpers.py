"""Helpers for the reliability tests (a unique module name: tests/ has no packages)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def doc(system: str = "", **fields: Any) -> dict[str, Any]:
    """A seed-layout prompt whose echoed answer starts with `system`."""
    return {"config": {"temperature": "1.0", "top_p": "0.95", "max_tokens": "256"}, "system": system,
            "user": "", "template": "{system}{history}{user}", **fields}


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs from an SSE line stream, as they arrive."""
    kind = ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, json.loads(line[6:])


def tree_snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` (outside .git) -> sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.relative_to(root).parts}
