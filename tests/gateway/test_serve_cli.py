"""`promptops serve` runs the gateway until Ctrl-C and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from promptops import triton


def test_serve_answers_then_stops_on_ctrl_c(repo, prompts, echo_server):
    port = triton.free_ports(1)[0]
    env = {**os.environ, "PROMPTOPS_MODEL": "echo", "PROMPTOPS_REPO": str(repo.path)}
    process = subprocess.Popen([sys.executable, "-m", "promptops", "serve", "--no-ui", "--port", str(port),
                                "--triton-url", echo_server.grpc_url], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/v1/chat", json={"prompt": "support", "message": "hi"})
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert response.json()["text"] == "S1 hi"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) in (0, 130)
