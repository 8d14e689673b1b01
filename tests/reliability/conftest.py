"""Reliability fixtures: real Triton servers we may kill, a real gateway over HTTP, git traces, tree snapshots.

Everything is real: `tritonserver` with the echo model (tests/model_repository/echo), uvicorn serving
`create_app`, git run by the store. Servers started here are always stopped here. Every test gets its own
config folder (XDG_CONFIG_HOME: the users file), and the gateway's client signs in as its owner unless asked not to.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rel_helpers import doc

from gateway.app import create_app
from gateway.server import ServerThread
from gateway.settings import GatewaySettings
from promptops.config.users import ROLES, Users
from promptops.triton import launcher as triton
from tests.conftest import ECHO_REPOSITORY, require_serving

OWNER = ("Olive Owner", "olive@example.com")


class OwnTriton:
    """A Triton with the echo model on fixed free ports that a test may start, SIGKILL, SIGSTOP and restart."""

    def __init__(self, runtime: Path) -> None:
        http, grpc, metrics = triton.free_ports(3)
        self.config = triton.TritonConfig(model_repositories=[ECHO_REPOSITORY], models=["echo"], http_port=http,
                                          grpc_port=grpc, metrics_port=metrics, runtime_dir=runtime)

    @property
    def url(self) -> str:
        return self.config.grpc_url

    def pid(self) -> int | None:
        return triton.TritonServer(self.config).pid()

    def start(self) -> None:
        if self.pid() is None:
            triton.down(self.config, timeout=5)  # clear a killed server's PID file and shared memory
            triton.up(self.config, timeout=120)

    def kill(self) -> None:
        """SIGKILL the server and its stubs (a crash: no graceful shutdown), then clean up after it."""
        pid = self.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self.pid() is not None and time.monotonic() < deadline:
                time.sleep(0.05)
        triton.down(self.config, timeout=5)

    def signal(self, sig: int) -> None:
        pid = self.pid()
        assert pid is not None
        os.killpg(pid, sig)


@pytest.fixture(scope="module")
def own_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnTriton]:
    """A killable Triton of this module (not started: tests call start())."""
    require_serving()
    server = OwnTriton(tmp_path_factory.mktemp("own-triton"))
    try:
        yield server
    finally:
        with_pid = server.pid()
        if with_pid is not None:
            os.killpg(with_pid, signal.SIGCONT)  # a test that failed while it was stopped
        triton.down(server.config, timeout=10)


@pytest.fixture(scope="session")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton.TritonConfig]:
    """A shared Triton serving the echo model (one per session, never killed)."""
    require_serving()
    server = OwnTriton(tmp_path_factory.mktemp("triton-echo"))
    server.start()
    try:
        yield server.config
    finally:
        triton.down(server.config)


@pytest.fixture
def owner_token(users: Users) -> str:
    """The token of Olive Owner (every role)."""
    return users.add(*OWNER, list(ROLES))[1]


@pytest.fixture
def prompts(repo: Any) -> dict[str, str]:
    """`support` v1 approved, v2 draft. Returns the commit SHAs."""
    shas = {"support@1": repo.commit({"prompts/support.json": doc("S1 ")}, "support v1")}
    repo.git("tag", "-a", "-m", "approve", "prompts/support/v1")
    shas["support@2"] = repo.commit({"prompts/support.json": doc("S2 ")}, "support v2")
    return shas


def settings_for(repo: Any, triton_url: str, **changes: Any) -> GatewaySettings:
    return GatewaySettings(repo=repo.path, triton_url=triton_url, default_model="echo", admin_token=None,
                           host="127.0.0.1", serve_drafts=False, allow_approve=True, store_url=None,
                           ui=False).with_(**changes)


@pytest.fixture
def gateway(repo: Any, prompts: dict[str, str], owner_token: str) -> Iterator[Callable[..., httpx.Client]]:
    """`gateway(triton_url, bind=..., anonymous=False, **settings)`: a real uvicorn gateway on a free port of
    `bind` (settings.host too), and an httpx client for it on 127.0.0.1, sending the owner's token unless
    `anonymous`."""
    stack: list[tuple[ServerThread, httpx.Client]] = []

    def start(triton_url: str, *, bind: str = "127.0.0.1", anonymous: bool = False, **changes: Any) -> httpx.Client:
        server = ServerThread(create_app(settings_for(repo, triton_url, host=bind, **changes), ui=False), host=bind)
        port = server.__enter__().rpartition(":")[2]
        headers = {} if anonymous else {"authorization": f"Bearer {owner_token}"}
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=headers)
        stack.append((server, client))
        return client

    yield start
    for server, client in stack:
        client.close()
        server.__exit__(None, None, None)




@pytest.fixture
def git_trace(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[list[str]]]]:
    """GIT_TRACE into a file for every git this process (and its children) runs; returns the argv lists.

    The file lives outside the test's tmp tree, which tests compare before and after."""
    folder = Path(tempfile.mkdtemp(prefix="promptops-git-trace-"))
    path = folder / "trace.log"
    monkeypatch.setenv("GIT_TRACE", str(path))

    def argvs() -> list[list[str]]:
        import shlex

        found = []
        for line in (path.read_text(errors="replace").splitlines() if path.exists() else []):
            if "trace: built-in: git " in line or "trace: exec: git " in line:
                found.append(shlex.split(line.split("trace: ", 1)[1].split(": ", 1)[1]))
        return found

    yield argvs
    shutil.rmtree(folder, ignore_errors=True)
