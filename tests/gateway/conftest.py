"""Gateway fixtures: a real Triton with the echo model, a real git repo of prompts, the app.

`echo_server` and `vllm_server` mirror tests/serving/conftest.py; it belongs in tests/conftest.py once shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import GatewaySettings
from promptops import triton
from promptops.errors import TritonLaunchError

TESTS_REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"


def _server(tmp: Path, repositories: list[Path], models: list[str]) -> Iterator[triton.TritonConfig]:
    try:
        triton.locate(triton.TritonConfig().python_env)
    except TritonLaunchError as exc:
        if os.environ.get("PROMPTOPS_SKIP_SERVING") == "1":
            pytest.skip(f"serving tests skipped: {exc.message}")
        pytest.fail(f"{exc.message}: run scripts/setup-serving.sh", pytrace=False)
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
    """A Triton serving only the deterministic echo model (one per session)."""
    yield from _server(tmp_path_factory.mktemp("triton-echo"), [TESTS_REPOSITORY], ["echo"])


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton.TritonConfig]:
    """A Triton serving the embedded SmolLM2 model through the CPU vllm backend (~30 s to start)."""
    yield from _server(tmp_path_factory.mktemp("triton-vllm"), [triton.REPO_ROOT / "model_repository"],
                       ["smollm2-135m"])


def doc(system: str = "", **fields: Any) -> dict[str, Any]:
    """A seed-layout prompt whose answer (echoed) starts with `system`."""
    return {"config": {"temperature": "1.0", "top_p": "0.95", "max_tokens": "256"}, "system": system,
            "user": "", "template": "{system}{history}{user}", **fields}


@pytest.fixture
def prompts(repo: Any) -> dict[str, str]:
    """support v1 (approved), support v2 (draft); fresh v1 (never approved). Returns the commit SHAs."""
    shas = {"support@1": repo.commit({"prompts/support.json": doc("S1 ")}, "support v1")}
    repo.git("tag", "-a", "-m", "approve", "prompts/support/v1")
    shas["support@2"] = repo.commit({"prompts/support.json": doc("S2 ")}, "support v2")
    shas["fresh@1"] = repo.commit({"prompts/fresh.json": doc("F1 ")}, "fresh v1")
    return shas


@pytest.fixture
def make_client(repo: Any, prompts: dict[str, str], echo_server: triton.TritonConfig
                ) -> Iterator[Callable[..., TestClient]]:
    """`make_client(**settings)`: a TestClient of a fresh app (lifespan running) on the test repo."""
    clients: list[TestClient] = []

    def make(**changes: Any) -> TestClient:
        settings = GatewaySettings(repo=repo.path, triton_url=echo_server.grpc_url, default_model="echo",
                                   admin_token=None, host="127.0.0.1", serve_drafts=False, allow_approve=True,
                                   store_url=None).with_(**changes)
        client = TestClient(create_app(settings, ui=False))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """The default app: loopback, no admin token, drafts not served."""
    return make_client()
