"""The launcher's behaviour without a running server (fast; no serving environment needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from promptops import triton
from promptops.errors import TritonLaunchError


@pytest.fixture
def config(tmp_path: Path) -> triton.TritonConfig:
    http, grpc, metrics = triton.free_ports(3)
    return triton.TritonConfig(runtime_dir=tmp_path / "rt", http_port=http, grpc_port=grpc,
                               metrics_port=metrics, python_env=tmp_path / "no-venv")


def test_status_of_a_stopped_server(config):
    state = triton.status(config)
    assert (state.running, state.ready, state.pid, state.models) == (False, False, None, ())
    assert state.grpc_url == config.grpc_url


def test_down_without_a_server_is_a_no_op(config):
    assert triton.down(config) is False


def test_a_stale_pid_file_is_ignored_and_removed(config):
    config.runtime_dir.mkdir(parents=True)
    config.pid_path.write_text('{"pid": 999999999, "shm_prefix": "not-ours"}')
    assert triton.status(config).running is False
    assert triton.down(config) is False and not config.pid_path.exists()


def test_missing_serving_environment_names_the_fix(config):
    with pytest.raises(TritonLaunchError, match="does not exist") as info:
        triton.TritonServer(config).start()
    assert "setup-serving.sh" in str(info.value)


def test_command_line_has_loopback_ports_and_every_repository(config, tmp_path):
    config.model_repositories = [tmp_path / "a", tmp_path / "b"]
    config.models = ["echo", "smollm2-135m"]
    env = triton.ServeEnvironment(python=Path("/x/bin/python"), tritonserver=Path("/x/tritonserver"),
                                  python_backend=Path("/x/py"), stub=Path("/x/stub"), libdir="/x/lib",
                                  bundled_libs=Path("/x/libs"))
    cmd = triton.TritonServer(config).command(Path("/rt/backends"), env, "pfx_")
    assert [a for a in cmd if a.startswith("--model-repository")] == [
        f"--model-repository={tmp_path / 'a'}", f"--model-repository={tmp_path / 'b'}"]
    assert {"--load-model=echo", "--load-model=smollm2-135m", "--model-control-mode=explicit",
            f"--grpc-port={config.grpc_port}", "--grpc-address=127.0.0.1"} <= set(cmd)


def test_environment_puts_the_serving_venv_first(config):
    env = triton.ServeEnvironment(python=Path("/venv/bin/python"), tritonserver=Path("/t"),
                                  python_backend=Path("/p"), stub=Path("/s"), libdir="/py/lib",
                                  bundled_libs=Path("/libs"))
    values = triton.TritonServer(config).environment(env)
    assert values["PATH"].startswith("/venv/bin:")
    assert values["LD_LIBRARY_PATH"].startswith("/py/lib:/libs")
    assert values["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and values["HF_HUB_OFFLINE"] == "1"


def test_environment_variables_choose_repositories_models_and_ports(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTOPS_MODEL_REPOSITORY", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    monkeypatch.setenv("PROMPTOPS_TRITON_MODELS", "echo, other")
    monkeypatch.setenv("PROMPTOPS_TRITON_GRPC_PORT", "9101")
    monkeypatch.delenv("PROMPTOPS_TRITON_HTTP_PORT", raising=False)
    config = triton.TritonConfig()
    assert config.model_repositories == [tmp_path / "a", tmp_path / "b"] and config.models == ["echo", "other"]
    assert (config.grpc_url, config.http_port) == ("127.0.0.1:9101", 8000)


def test_a_bad_port_variable_names_the_variable(monkeypatch):
    monkeypatch.setenv("PROMPTOPS_TRITON_METRICS_PORT", "80a")
    with pytest.raises(TritonLaunchError, match="PROMPTOPS_TRITON_METRICS_PORT='80a' is not a port"):
        triton.TritonConfig()

