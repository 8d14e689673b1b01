"""Production topology: serve from a read-only clone that is fetched periodically."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import GatewaySettings
from promptops.store import remote


def test_fetch_reports_changes_and_prunes_revoked_approvals(repo, prompts, tmp_path):
    clone = remote.clone(str(repo.path), tmp_path / "clone", "main")
    assert remote.fetch(clone, "main") is False
    repo.git("tag", "-d", "prompts/support/v1")
    assert remote.fetch(clone, "main") is True
    assert "prompts/support/v1" not in repo.git("-C", str(clone), "tag", "--list")


def wait_for(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_new_approval_is_served_without_restart(repo, prompts, echo_server, tmp_path):
    settings = GatewaySettings(repo=tmp_path, triton_url=echo_server.grpc_url, default_model="echo",
                               store_url=str(repo.path), store_ref="main", refresh_s=0.2,
                               clone_dir=tmp_path / "clone", admin_token=None, serve_drafts=False)
    with TestClient(create_app(settings, ui=False), base_url="http://127.0.0.1") as client:
        def chat() -> int:
            return client.post("/v1/chat", json={"prompt": "fresh", "message": "hi"}).status_code
        assert chat() == 404
        repo.git("tag", "-a", "-m", "ok", "prompts/fresh/v1")
        assert wait_for(lambda: chat() == 200)
        assert client.get("/v1/store").json()["read_only"] is True
