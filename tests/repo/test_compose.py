"""docker-compose.yml, the Dockerfile and model_repository/, checked statically (no Docker engine here)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from promptops.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
TRITON, GATEWAY = SERVICES["triton"], SERVICES["gateway"]
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
MODEL_JSONS = sorted((ROOT / "model_repository").glob("*/*/model.json"))


def interpolate(text: str) -> str:
    """Compose's `${VAR:-default}` with nothing set: the default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


def as_list(value: str | list[str]) -> list[str]:
    return value.split() if isinstance(value, str) else list(value)


def environment(service: dict) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return dict(env)
    return {item.partition("=")[0]: (item.partition("=")[2] if "=" in item else None) for item in env}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in joined.splitlines() if line.strip()]


def shipped_models() -> set[str]:
    """Every model the shipped prompts name, plus the gateway's default model."""
    named = {json.loads(p.read_text()).get("model") for p in (ROOT / "prompts").glob("*.json")}
    default = next(f.default for f in dataclasses.fields(Settings) if f.name == "default_model")
    return {m for m in named if m} | {environment(GATEWAY).get("PROMPTOPS_MODEL") or default}


def test_two_services_triton_from_nvidias_vllm_image_and_the_gateway_built_here():
    assert set(SERVICES) == {"triton", "gateway"}
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-vllm-python-py3", interpolate(TRITON["image"]))
    assert GATEWAY["build"] == {"context": ".", "dockerfile": "Dockerfile"} and (ROOT / "Dockerfile").is_file()


def test_triton_loads_exactly_the_models_the_shipped_prompts_use():
    command = as_list(TRITON["command"])
    assert command[0] == "tritonserver" and "--model-control-mode=explicit" in command
    assert "--model-repository=/models" in command and "./model_repository:/models:ro" in TRITON["volumes"]
    loaded = {arg.split("=", 1)[1] for arg in command if arg.startswith("--load-model=")}
    assert loaded == shipped_models()
    assert all((ROOT / "model_repository" / name / "config.pbtxt").is_file() for name in loaded)


def test_triton_gets_a_gpu_and_is_healthy_only_when_ready():
    devices = TRITON["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    assert "localhost:8000/v2/health/ready" in " ".join(TRITON["healthcheck"]["test"])


def test_gateway_serves_against_triton_once_triton_is_healthy():
    command = " ".join(as_list(GATEWAY["command"]))
    assert command.startswith("promptops serve") and "pip" not in command
    assert "--triton-url triton:8001" in command and "--host 0.0.0.0" in command
    assert GATEWAY["depends_on"] == {"triton": {"condition": "service_healthy"}}
    assert "127.0.0.1:7070/healthz" in " ".join(GATEWAY["healthcheck"]["test"])


def test_ports_gateway_public_triton_on_loopback_only():
    assert GATEWAY["ports"] == ["7070:7070"]
    assert all(port.startswith("127.0.0.1:") for port in TRITON["ports"])
    assert "127.0.0.1:8001:8001" in TRITON["ports"]


def test_dockerfile_installs_at_build_time_and_trusts_the_mounted_repository():
    steps = dockerfile()
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert re.search(r"pip install \"?\.\[serve\]", runs) and "safe.directory" in runs
    assert "git" in runs.split("install", 1)[1]
    started = " ".join(args for op, args in steps if op in ("CMD", "ENTRYPOINT"))
    assert "promptops" in started and "pip" not in started and "install" not in started


def test_dockerignore_keeps_the_context_to_what_the_build_copies():
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert rules[0] == "*"
    copied = [arg for op, args in dockerfile() if op == "COPY" for arg in args.split()[:-1] if not arg.startswith("--")]
    assert copied and all(f"!{src.rstrip('/')}" in {r.rstrip("/") for r in rules} for src in copied)


@pytest.mark.parametrize("path", MODEL_JSONS, ids=lambda p: p.parent.parent.name)
def test_model_json_names_a_hub_id_and_expands_nothing(path):
    text = path.read_text()
    assert "${" not in text and "$" not in text
    assert HUB_ID.fullmatch(json.loads(text)["model"])


def test_docker_compose_config_accepts_the_file():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no docker compose plugin on this machine (the static checks above still ran)")
    result = subprocess.run([docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
