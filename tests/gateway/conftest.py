"""Gateway fixtures: a real Triton with the echo model, a real git repo of prompts, the app, its users.

`echo_server` and `vllm_server` come from tests/conftest.py. Every test gets its own config folder
(XDG_CONFIG_HOME): the users file and the local owner's token never touch the real home.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import GatewaySettings
from promptops.config.users import ROLES, Users
from promptops.triton import launcher as triton

BASE_URL = "http://127.0.0.1:7070"  # a loopback Host: the gateway refuses names outside allowed_hosts


def doc(system: str = "", **fields: Any) -> dict[str, Any]:
    """A seed-layout prompt whose answer (echoed) starts with `system`."""
    return {"config": {"temperature": "1.0", "top_p": "0.95", "max_tokens": "256"}, "system": system,
            "user": "", "template": "{system}{history}{user}", **fields}


def labels(**support: int) -> dict[str, Any]:
    """A labels.json document with `support`'s labels (production is protected)."""
    return {"protected": ["production"], "labels": {"support": support}}


@pytest.fixture
def person(users: Users) -> Callable[..., dict[str, str]]:
    """`person("Ed Editor", "editor")`: add them (email: first name @example.com); their Authorization header."""
    def add(name: str, *roles: str) -> dict[str, str]:
        token = users.add(name, f"{name.split()[0].lower()}@example.com", list(roles))[1]
        return {"authorization": f"Bearer {token}"}

    return add


@pytest.fixture
def owner(person: Callable[..., dict[str, str]]) -> dict[str, str]:
    """The Authorization header of Olive Owner, who holds every role."""
    return person("Olive Owner", *ROLES)


@pytest.fixture
def prompts(repo: Any) -> dict[str, str]:
    """support v1 (approved), support v2 (draft); fresh v1 (never approved). Returns the commit SHAs."""
    shas = {"support@1": repo.commit({"prompts/support.json": doc("S1 ")}, "support v1")}
    repo.git("tag", "-a", "-m", "approve", "prompts/support/v1")
    shas["support@2"] = repo.commit({"prompts/support.json": doc("S2 ")}, "support v2")
    shas["fresh@1"] = repo.commit({"prompts/fresh.json": doc("F1 ")}, "fresh v1")
    return shas


@pytest.fixture
def labelled(repo: Any, prompts: dict[str, str]) -> dict[str, str]:
    """`prompts`, with support v2 approved too and labels committed: production -> v1, staging -> v2."""
    repo.git("tag", "-a", "-m", "approve", "prompts/support/v2", prompts["support@2"])
    prompts["labels"] = repo.commit({"labels.json": labels(production=1, staging=2)}, "labels")
    return prompts


@pytest.fixture
def make_client(repo: Any, prompts: dict[str, str], echo_server: triton.TritonConfig
                ) -> Iterator[Callable[..., TestClient]]:
    """`make_client(**settings)`: a TestClient of a fresh app (lifespan running) on the test repo."""
    clients: list[TestClient] = []

    def make(**changes: Any) -> TestClient:
        settings = GatewaySettings(repo=repo.path, triton_url=echo_server.grpc_url, default_model="echo",
                                   admin_token=None, host="127.0.0.1", serve_drafts=False, allow_approve=True,
                                   store_url=None, webhook_secret=None).with_(**changes)
        client = TestClient(create_app(settings, ui=False), base_url=BASE_URL)
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """The default app: loopback (reads open, writes need a credential), no admin token, drafts not served."""
    return make_client()


@pytest.fixture
def make_clone(make_client: Callable[..., TestClient], repo: Any,
               tmp_path_factory: pytest.TempPathFactory) -> Callable[..., TestClient]:
    """`make_clone(**settings)`: a gateway serving a read-only clone of the test repo, cloned when called;
    no periodic refresh unless `refresh_s` is given. The clone lives outside the repo's working tree."""
    def make(**changes: Any) -> TestClient:
        return make_client(**{"store_url": str(repo.path), "refresh_s": 0,
                              "clone_dir": tmp_path_factory.mktemp("clone") / "clone", **changes})

    return make
