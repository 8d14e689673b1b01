"""Replicas that converge (issue 18): three real gateway processes on one host, one bare git repository.

They start at the same moment with the same --store and the default clone location: each gets a clone
of its own. With PROMPTOPS_REFRESH=600 only the webhook can explain convergence: ONE signed delivery to
one replica is forwarded to its peers (PROMPTOPS_PEERS), and all three serve a label move within 5 s.
A replica whose fetch fails keeps serving what it had and says why in GET /v1/store.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from rel_helpers import doc

from gateway.deps import webhook_signature
from gateway.peers import resolve
from promptops.errors import StoreError
from promptops.store import remote
from promptops.triton import launcher as triton

SECRET = "fleet-secret"
NAME = "support"
PUSH = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()


def labels(version: int) -> dict[str, object]:
    return {"protected": ["production"], "labels": {NAME: {"production": version}}}


@pytest.fixture
def bare(repo, tmp_path_factory) -> Path:
    """A bare repository that `repo` (v1 and v2 approved, production -> v1) pushes to."""
    path = tmp_path_factory.mktemp("origin") / "prompts.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    repo.commit({f"prompts/{NAME}.json": doc("V1 ")}, "v1")
    repo.git("tag", "-a", "-m", "approve", f"prompts/{NAME}/v1")
    repo.commit({f"prompts/{NAME}.json": doc("V2 ")}, "v2")
    repo.git("tag", "-a", "-m", "approve", f"prompts/{NAME}/v2")
    repo.commit({"labels.json": labels(1)}, "production -> v1")
    repo.git("remote", "add", "origin", str(path))
    repo.git("push", "-q", "origin", "main", "--tags")
    return path


@pytest.fixture
def fleet(echo_server, tmp_path_factory) -> Iterator[Callable[..., list[str]]]:
    """`fleet(store, count)`: `count` gateway processes started at once on free ports, each listing the others as
    peers and sharing one HOME (the default clone location); their base URLs once all answer /readyz 200."""
    procs: list[subprocess.Popen[bytes]] = []
    home = tmp_path_factory.mktemp("home")

    def start(store: Path, count: int) -> list[str]:
        ports = triton.free_ports(count)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        base = {**os.environ, "HOME": str(home), "PROMPTOPS_STORE": str(store), "PROMPTOPS_REFRESH": "600",
                "PROMPTOPS_WEBHOOK_SECRET": SECRET, "PROMPTOPS_TRITON_URL": echo_server.grpc_url,
                "PROMPTOPS_MODEL": "echo", "PROMPTOPS_UI": "0", "PROMPTOPS_SERVE_DRAFTS": "0",
                "PROMPTOPS_PEER_TIMEOUT": "2", "PROMPTOPS_DRAIN_DELAY": "0"}
        base.pop("PROMPTOPS_CLONE_DIR", None)
        for port, url in zip(ports, urls, strict=True):
            env = {**base, "PROMPTOPS_PEERS": ",".join(u for u in urls if u != url)}
            procs.append(subprocess.Popen([sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory",
                                           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                                           "--no-access-log"], env=env, start_new_session=True))
        deadline = time.monotonic() + 60
        for url, proc in zip(urls, procs[-count:], strict=True):
            while True:
                assert proc.poll() is None, f"the replica on {url} exited with {proc.returncode}"
                try:
                    if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"the replica on {url} did not become ready"
                time.sleep(0.1)
        return urls

    start.home = home  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def served(url: str) -> str | None:
    """The version a bare NAME is served at by the replica at `url` (None: no answer)."""
    try:
        response = httpx.post(url + "/v1/chat", json={"prompt": NAME, "message": "x"}, timeout=5)
    except httpx.TransportError:
        return None
    return response.headers.get("x-prompt-version")


def webhook(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/store/refresh", content=PUSH, timeout=10,
                      headers={"X-Hub-Signature-256": webhook_signature(SECRET, PUSH), "X-GitHub-Event": "push",
                               "Content-Type": "application/json"})


def test_one_webhook_converges_three_replicas(repo, bare, fleet):
    urls = fleet(bare, 3)
    assert [served(url) for url in urls] == ["1", "1", "1"]
    # Started at the same moment with the same store and clone location: three clones, one each, all held.
    clones = fleet.home / ".cache" / "promptops" / "clones"
    stem = remote.default_clone_dir(str(bare), clones)
    assert sorted(p.name for p in clones.iterdir() if p.is_dir()) == [stem.name, f"{stem.name}-1", f"{stem.name}-2"]
    with pytest.raises(StoreError, match="in use by pid"):
        remote.clone(str(bare), stem, "main")

    head = repo.commit({"labels.json": labels(2)}, "production -> v2")
    repo.git("push", "-q", "origin", "main", "--tags")
    sent = time.monotonic()
    response = webhook(urls[0])
    assert response.status_code == 200 and response.json() == {"refreshed": True, "head": head}, response.text
    pending = set(urls)
    while pending and time.monotonic() - sent < 5:
        pending = {url for url in pending if served(url) != "2"}
        time.sleep(0.05)
    assert not pending, f"not converged within 5 s of one webhook: {sorted(pending)}"
    for url in urls:
        refresh = httpx.get(url + "/v1/store", timeout=5).json()["refresh"]
        assert refresh["ok"] is True and refresh["commit"] == head


def test_a_replica_whose_fetch_fails_keeps_serving(repo, bare, fleet):
    (url,) = fleet(bare, 1)
    assert served(url) == "1"
    repo.commit({"labels.json": labels(2)}, "production -> v2")
    repo.git("push", "-q", "origin", "main", "--tags")
    moved = bare.with_name("moved.git")
    bare.rename(moved)
    try:
        response = webhook(url)
        assert response.status_code >= 400
        assert served(url) == "1"  # what it had: the catalog stays
        refresh = httpx.get(url + "/v1/store", timeout=5).json()["refresh"]
        assert refresh["ok"] is False and "fetching" in refresh["error"]
        assert httpx.get(url + "/readyz", timeout=5).status_code == 200
    finally:
        moved.rename(bare)
    assert webhook(url).status_code == 200 and served(url) == "2"  # and it recovers at the next delivery


def test_startup_errors_are_one_line(repo, bare, tmp_path):
    with pytest.raises(StoreError, match="has no branch 'nope'") as wrong_ref:
        remote.clone(str(bare), tmp_path / "c1", "nope")
    assert "--ref" in wrong_ref.value.fix
    with pytest.raises(StoreError, match=r"cloning \S+ failed: repository .* does not exist"):
        remote.clone(str(tmp_path / "missing.git"), tmp_path / "c2", "main")
    assert not (tmp_path / "c2").exists() and not list(tmp_path.glob(".c2.partial-*"))
    run = subprocess.run([sys.executable, "-m", "promptops", "serve", "--store", str(tmp_path / "missing.git"),
                          "--triton-url", "127.0.0.1:9", "--port", str(triton.free_ports(1)[0]), "--no-ui"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)})
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and "does not exist" in run.stderr and "fix:" in run.stderr


def test_a_half_made_clone_is_made_again(bare, tmp_path):
    dest = tmp_path / "clone"
    (dest / ".git").mkdir(parents=True)  # what a replica killed mid-clone by an older gateway left
    assert remote.clone(str(bare), dest, "main") == dest
    assert remote.fetch(dest, "main") is False


def test_peers_by_name_resolve_to_every_address():
    found = asyncio.run(resolve("localhost:7070, http://10.0.0.9:8080/, not-a-peer"))
    assert "http://127.0.0.1:7070" in found and found[-1] == "http://10.0.0.9:8080"
