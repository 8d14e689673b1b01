"""`promptops serve` as a real process: it answers, and every stop signal stops it and its own Triton.

The embedded-Triton tests run `serve` without `--triton-url`, so it starts its own tritonserver
(the echo model, free ports, a tmp runtime folder), then send real signals and look for leftovers
with psutil.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from promptops.triton import launcher as triton
from tests.conftest import ECHO_REPOSITORY, require_serving


def chat(port: int, process: subprocess.Popen[str], timeout: float = 60) -> str:
    """The text `serve` on `port` answers for prompt `support`, once it listens."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            return httpx.post(f"http://127.0.0.1:{port}/v1/chat", json={"prompt": "support", "message": "hi"},
                              timeout=10).json()["text"]
        except httpx.TransportError:
            time.sleep(0.2)
    log = process.stderr.read() if process.poll() is not None and process.stderr else ""
    raise AssertionError(f"serve did not answer (exit {process.poll()}): {log}")


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def tritons(runtime: Path) -> list[psutil.Process]:
    """Live tritonserver processes whose backends come from `runtime` (ours, not other tests')."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["status"] != psutil.STATUS_ZOMBIE and "tritonserver" in cmdline and str(runtime) in cmdline:
            found.append(proc)
    return found


class EmbeddedServe:
    """Starts `promptops serve` processes that share one embedded-Triton setup (runtime folder, ports)."""

    def __init__(self, repo_path: Path, runtime: Path) -> None:
        http, grpc, metrics = triton.free_ports(3)
        self.runtime = runtime
        self.config = triton.TritonConfig(model_repositories=[ECHO_REPOSITORY], models=["echo"], runtime_dir=runtime,
                                          http_port=http, grpc_port=grpc, metrics_port=metrics)
        self.env = {k: v for k, v in os.environ.items() if k != "PROMPTOPS_TRITON_URL"} | {
            "PROMPTOPS_MODEL": "echo", "PROMPTOPS_REPO": str(repo_path), "PROMPTOPS_TRITON_DIR": str(runtime),
            "PROMPTOPS_MODEL_REPOSITORY": str(ECHO_REPOSITORY), "PROMPTOPS_TRITON_MODELS": "echo",
            "PROMPTOPS_TRITON_HTTP_PORT": str(http), "PROMPTOPS_TRITON_GRPC_PORT": str(grpc),
            "PROMPTOPS_TRITON_METRICS_PORT": str(metrics), "PROMPTOPS_DRAIN_DELAY": "0.5"}
        self.processes: list[subprocess.Popen[str]] = []

    def start(self) -> tuple[subprocess.Popen[str], int]:
        port = triton.free_ports(1)[0]
        process = subprocess.Popen([sys.executable, "-m", "promptops", "serve", "--no-ui", "--port", str(port)],
                                   env=self.env, stderr=subprocess.PIPE, text=True)
        self.processes.append(process)
        return process, port

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            if process.stderr:
                process.stderr.close()
        triton.down(self.config)


@pytest.fixture
def embedded(repo, prompts, tmp_path) -> Iterator[EmbeddedServe]:
    require_serving()
    setup = EmbeddedServe(repo.path, tmp_path / "triton-runtime")
    yield setup
    setup.close()


def test_serve_answers_then_stops_on_ctrl_c(repo, prompts, echo_server):
    port = triton.free_ports(1)[0]
    env = {**os.environ, "PROMPTOPS_MODEL": "echo", "PROMPTOPS_REPO": str(repo.path)}
    process = subprocess.Popen([sys.executable, "-m", "promptops", "serve", "--no-ui", "--port", str(port),
                                "--triton-url", echo_server.grpc_url], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert chat(port, process, timeout=30) == "S1 hi"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) in (0, 130)
    assert triton.status(echo_server).ready  # a Triton it did not start is left running


def test_serve_prints_a_sign_in_link_for_the_repository_owner(repo, prompts, echo_server, config_home):
    port = triton.free_ports(1)[0]
    env = {**os.environ, "PROMPTOPS_MODEL": "echo", "PROMPTOPS_REPO": str(repo.path)}
    process = subprocess.Popen([sys.executable, "-m", "promptops", "serve", "--no-ui", "--port", str(port),
                                "--triton-url", echo_server.grpc_url], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        lines = iter(process.stderr.readline, "")
        link = next(line for line in lines if "/signin?token=" in line).split()[-1]
        assert link.startswith(f"http://127.0.0.1:{port}/signin?token=po_")
        assert chat(port, process, timeout=30) == "S1 hi"
        signed = httpx.get(link, follow_redirects=False)
        assert signed.status_code == 303 and "HttpOnly" in signed.headers["set-cookie"]
        token = link.partition("token=")[2]
        saved = httpx.put(f"http://127.0.0.1:{port}/v1/prompts/support", headers={"authorization": f"Bearer {token}"},
                          json={"text": '{"config": {}, "system": "S3 ", "template": "{system}{user}"}',
                                "base_commit": prompts["support@2"]}, timeout=30)
        assert saved.status_code == 200, saved.text
        assert repo.git("log", "-1", "--format=%an <%ae>") == "Ada Author <ada@example.com>"  # the git identity
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) in (0, 130)
    token_file = config_home / "promptops" / "local-token"
    assert token_file.read_text().strip() == token and token_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_signal_stops_serve_and_the_triton_it_started(embedded, sig):
    process, port = embedded.start()
    assert chat(port, process) == "S1 hi"
    assert len(tritons(embedded.runtime)) == 1
    process.send_signal(sig)
    # SIGTERM drains (gateway/drain.py) and exits 0; Ctrl-C and SIGHUP stop at once, 128 + the signal.
    assert process.wait(timeout=40) == (0 if sig == signal.SIGTERM else 128 + sig)
    assert tritons(embedded.runtime) == [] and not embedded.config.pid_path.exists()


def test_a_stop_signal_while_triton_starts_stops_triton_too(embedded):
    process, _ = embedded.start()
    assert wait_for(embedded.config.pid_path.exists)  # tritonserver launched...
    assert not triton.status(embedded.config).ready  # ...and still starting
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=40) == 128 + signal.SIGTERM
    assert tritons(embedded.runtime) == []


def test_serve_replaces_the_triton_a_killed_serve_left_behind(embedded):
    first, port = embedded.start()
    assert chat(port, first) == "S1 hi"
    orphan = triton.status(embedded.config)
    first.kill()
    first.wait(timeout=10)
    assert triton.status(embedded.config).orphaned and [p.pid for p in tritons(embedded.runtime)] == [orphan.pid]
    second, port = embedded.start()
    assert chat(port, second) == "S1 hi"
    replacement = triton.status(embedded.config)
    assert replacement.owner == second.pid and replacement.pid != orphan.pid
    assert [p.pid for p in tritons(embedded.runtime)] == [replacement.pid]
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=40) == 0 and tritons(embedded.runtime) == []
