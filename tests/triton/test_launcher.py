"""The launcher: first without a running server (fast; no serving environment needed), then the
processes and ports of a real one (the echo model), faults injected by killing and holding ports."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from promptops.errors import TritonLaunchError
from promptops.triton import launcher as triton
from tests.conftest import ECHO_REPOSITORY, require_serving
from tests.gateway.test_serve_cli import EmbeddedServe, wait_for


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
    assert config.fixed_ports == {"grpc_port"}  # set explicitly: must be free; the defaults may move


def test_a_bad_port_variable_names_the_variable(monkeypatch):
    monkeypatch.setenv("PROMPTOPS_TRITON_METRICS_PORT", "80a")
    with pytest.raises(TritonLaunchError, match="PROMPTOPS_TRITON_METRICS_PORT='80a' is not valid: use a port number"):
        triton.TritonConfig()



def test_environment_resolves_hub_ids_offline_from_hf_home(config, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", "/elsewhere")  # would move the hub cache away from $HF_HOME/hub
    config.hf_home = tmp_path / "hf"
    env = triton.ServeEnvironment(python=Path("/venv/bin/python"), tritonserver=Path("/t"), python_backend=Path("/p"),
                                  stub=Path("/s"), libdir="/py/lib", bundled_libs=Path("/libs"))
    values = triton.TritonServer(config).environment(env)
    assert (values["HF_HOME"], values["HF_HUB_OFFLINE"]) == (str(tmp_path / "hf"), "1")
    assert "HF_HUB_CACHE" not in values and "PROMPTOPS_MODEL_CACHE" not in values


@pytest.mark.parametrize(("promptops_hf_home", "hf_home", "expected"), [
    ("/a", "/b", "/a"), (None, "/b", "/b"), (None, None, "~/.cache/promptops/hf")])
def test_hf_home_is_promptops_then_hf_home_then_the_default(monkeypatch, promptops_hf_home, hf_home, expected):
    for name, value in (("PROMPTOPS_HF_HOME", promptops_hf_home), ("HF_HOME", hf_home)):
        monkeypatch.setenv(name, value) if value else monkeypatch.delenv(name, raising=False)
    assert triton.TritonConfig().hf_home == prepare_weights().hf_home() == Path(expected).expanduser()


def test_missing_hub_weights_fail_before_the_server_starts(config, tmp_path):
    config.hf_home, config.models = tmp_path / "empty", ["smollm2-135m"]
    with pytest.raises(TritonLaunchError, match=r"\(HuggingFaceTB/SmolLM2-135M-Instruct\) are not in the offline") as info:
        triton.TritonServer(config)._check_model_paths()
    assert "setup-serving.sh" in str(info.value)


def prepare_weights():
    """scripts/prepare_weights.py as a module (it runs in .venv-serve; only its stdlib parts are used here)."""
    path = triton.REPO_ROOT / "scripts" / "prepare_weights.py"
    spec = importlib.util.spec_from_file_location("prepare_weights", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def weights(monkeypatch, tmp_path):
    """prepare_weights with a fake GGUF and a fake conversion that counts its runs."""
    module, runs = prepare_weights(), []
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"gguf")
    monkeypatch.setenv("PROMPTOPS_HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(module, "source_gguf", lambda: gguf)

    def convert(source, out):
        runs.append(out)
        for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"):
            (out / name).write_text(name)

    monkeypatch.setattr(module, "convert", convert)
    module.runs = runs
    return module


def test_prepared_weights_are_where_the_launcher_looks_for_the_hub_id(weights, tmp_path):
    model_json = json.loads((triton.REPO_ROOT / "model_repository/smollm2-135m/1/model.json").read_text())
    folder = weights.prepare()
    assert model_json["model"] == weights.HUB_ID and re.fullmatch(r"[0-9a-f]{40}", folder.name)
    assert triton.hub_snapshot(tmp_path / "hf", model_json["model"]) == folder
    assert weights.prepare() == folder and len(weights.runs) == 1  # content-checked: reused


def test_damaged_weights_are_rebuilt_and_a_moved_ref_is_restored(weights):
    folder = weights.prepare()
    (folder / "model.safetensors").write_text("damaged")
    (folder.parent.parent / "refs" / "main").write_text("0" * 40)
    assert weights.prepare() == folder and len(weights.runs) == 2
    assert (folder / "model.safetensors").read_text() == "model.safetensors"
    assert (folder.parent.parent / "refs" / "main").read_text() == folder.name


def test_older_prepared_snapshots_go_real_downloads_stay(weights):
    snapshots = weights.prepare().parent
    (snapshots / "old").mkdir()
    (snapshots / "old" / weights.MANIFEST).write_text("{}")
    (snapshots / "download").mkdir()
    (snapshots / "download" / "config.json").write_text("{}")
    weights.prepare()
    assert sorted(p.name for p in snapshots.iterdir()) == sorted(["download", weights.prepare().name])


@pytest.fixture
def hold() -> Iterator[Callable[[], int]]:
    """`hold()`: a port on 127.0.0.1 that something else listens on until the test ends."""
    sockets: list[socket.socket] = []

    def listen() -> int:
        sockets.append(socket.create_server(("127.0.0.1", 0)))
        return sockets[-1].getsockname()[1]

    yield listen
    for sock in sockets:
        sock.close()


def test_a_taken_port_that_was_set_is_an_error_naming_its_variable(monkeypatch, hold, config):
    port = hold()
    monkeypatch.setenv("PROMPTOPS_TRITON_GRPC_PORT", str(port))
    config = triton.TritonConfig(runtime_dir=config.runtime_dir, python_env=config.python_env)
    with pytest.raises(TritonLaunchError, match=f"port {port} on 127.0.0.1 is already in use") as info:
        triton.TritonServer(config).start()
    assert info.value.fix == "stop whatever listens there, or set PROMPTOPS_TRITON_GRPC_PORT to a free port"


@pytest.mark.parametrize(("flag", "setting"), [("--port", "--port (or PROMPTOPS_PORT)"), (
    "--triton-grpc-port", "PROMPTOPS_TRITON_GRPC_PORT (or --triton-grpc-port)")], ids=["gateway", "triton"])
def test_serve_names_the_setting_of_a_taken_port(repo, hold, tmp_path, flag, setting):
    port = hold()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTOPS_TRITON")}
    result = subprocess.run([sys.executable, "-m", "promptops", "serve", "--no-ui", "--port",
                             str(triton.free_ports(1)[0]), flag, str(port)], capture_output=True, text=True,
                            env=env | {"PROMPTOPS_TRITON_DIR": str(tmp_path / "rt")}, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"Error: port {port} on 127.0.0.1 is already in use" in result.stderr
    assert f"fix: stop whatever listens there, or set {setting} to a free port" in result.stderr


@pytest.fixture
def echo_config(tmp_path) -> Iterator[triton.TritonConfig]:
    """A real Triton's settings (the echo model, a tmp runtime folder); stopped after the test."""
    require_serving()
    http, grpc, metrics = triton.free_ports(3)
    config = triton.TritonConfig(model_repositories=[ECHO_REPOSITORY], models=["echo"], http_port=http,
                                 grpc_port=grpc, metrics_port=metrics, runtime_dir=tmp_path / "rt")
    yield config
    triton.down(config)


def test_taken_default_ports_move_to_free_ones(echo_config, hold):
    taken = {hold(), hold()}
    echo_config.http_port, echo_config.grpc_port = taken  # defaults (not in fixed_ports), held by others
    state = triton.up(echo_config, timeout=120)
    assert state.ready and not {echo_config.http_port, echo_config.grpc_port} & taken
    assert state.grpc_url == triton.local_grpc_url(echo_config) == echo_config.grpc_url


@pytest.fixture
def embedded(repo, tmp_path) -> Iterator[EmbeddedServe]:
    """`promptops serve` with its own Triton (the echo model) in a repository with one commit."""
    require_serving()
    repo.commit({"README.md": "prompts live here\n"})
    setup = EmbeddedServe(repo.path, tmp_path / "triton-runtime")
    yield setup
    setup.close()


def gateway_ready(port: int) -> bool:
    """The gateway on `port` answers /readyz 200 (Triton ready at its triton_url, the model loaded)."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_a_sigkilled_triton_under_serve_leaves_no_zombie_and_no_stub(embedded):
    process, port = embedded.start()
    assert wait_for(lambda: gateway_ready(port), timeout=60), process.poll()
    server = psutil.Process(triton.status(embedded.config).pid)
    stubs = server.children(recursive=True)
    assert [p.name() for p in stubs] == ["triton_python_backend_stub"]
    server.kill()
    assert wait_for(lambda: not any(p.is_running() for p in (server, *stubs)), timeout=5)  # a zombie runs too
    status = subprocess.run([sys.executable, "-m", "promptops", "triton", "status"], env=embedded.env,
                            capture_output=True, text=True, timeout=60)
    assert f"exited (pid {server.pid}, " in status.stdout and status.returncode == 1
    assert "killed by signal 9 (SIGKILL); 1 stub process cleaned up" in status.stdout
    assert process.poll() is None  # the gateway stays up (503 until serve is restarted)
