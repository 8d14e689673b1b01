"""Real Triton servers for the serving tests: one with the echo model, one with vLLM.

Without `.venv-serve` these tests fail with the fix (run scripts/setup-serving.sh);
set PROMPTOPS_SKIP_SERVING=1 to skip them instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vllm: needs the real vLLM engine (slow start, ~3 GB RAM)")


def _wait_for_log(path: Path, needle: str, count: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.read_text(errors="replace").count(needle) >= count:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def wait_for_log() -> Callable[..., bool]:
    """`wait_for_log(path, needle, count)`: True once the server log holds `needle` `count` times."""
    return _wait_for_log
