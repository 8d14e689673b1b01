"""Real Triton servers for the serving tests: one with the echo model, one with vLLM.

Without `.venv-serve` these tests fail with the fix (run scripts/setup-serving.sh);
set PROMPTOPS_SKIP_SERVING=1 to skip them instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from promptops import triton
from promptops.errors import TritonLaunchError

TESTS_REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vllm: needs the real vLLM engine (slow start, ~3 GB RAM)")


def require_serving() -> None:
    """Fail (or skip with PROMPTOPS_SKIP_SERVING=1) when the serving environment is missing."""
    try:
        triton.locate(triton.TritonConfig().python_env)
    except TritonLaunchError as exc:
        if os.environ.get("PROMPTOPS_SKIP_SERVING") == "1":
            pytest.skip(f"serving tests skipped (PROMPTOPS_SKIP_SERVING=1): {exc.message}")
        pytest.fail(f"{exc.message}: run scripts/setup-serving.sh "
                    "(or set PROMPTOPS_SKIP_SERVING=1 to skip the serving tests)", pytrace=False)


def _server(tmp: Path, repositories: list[Path], models: list[str]) -> Iterator[triton.TritonConfig]:
    require_serving()
    http, grpc, metrics = triton.free_ports(3)
    config = triton.TritonConfig(model_repositories=repositories, models=models, http_port=http,
                                 grpc_port=grpc, metrics_port=metrics, runtime_dir=tmp)
    triton.up(config, timeout=300)
    try:
        yield config
    finally:
        triton.down(config)


@pytest.fixture(scope="session")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton.TritonConfig]:
    """A Triton serving only the deterministic echo model."""
    yield from _server(tmp_path_factory.mktemp("triton-echo"), [TESTS_REPOSITORY], ["echo"])


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton.TritonConfig]:
    """A Triton serving the embedded SmolLM2 model through the CPU vllm backend."""
    yield from _server(tmp_path_factory.mktemp("triton-vllm"),
                       [triton.REPO_ROOT / "model_repository"], ["smollm2-135m"])


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
