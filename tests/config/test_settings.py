"""One settings model: PROMPTOPS_* variables read through pydantic-settings, one message per bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from promptops.config.reader import from_env
from promptops.config.settings import Settings, TritonSettings
from promptops.errors import PromptOpsError


@pytest.mark.parametrize(("variable", "value", "field", "expected"), [
    ("PROMPTOPS_REFRESH", "5m", "refresh_s", 300.0),
    ("PROMPTOPS_REFRESH", "250ms", "refresh_s", 0.25),
    ("PROMPTOPS_SERVE_DRAFTS", "yes", "serve_drafts", True),
    ("PROMPTOPS_PORT", "9000", "port", 9000),
    ("PROMPTOPS_MODEL", "echo", "default_model", "echo"),
    ("PROMPTOPS_APPROVALS", "signed", "signed_approvals", True),
])
def test_variables_are_read(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str,
                            expected: object) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(from_env(GatewaySettings), field) == expected


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("PROMPTOPS_REFRESH", "5min", "PROMPTOPS_REFRESH='5min' is not valid: use a duration: 30, 30s, 5m, 1h or 250ms"),
    ("PROMPTOPS_PORT", "http", "PROMPTOPS_PORT='http' is not valid: use a whole number"),
    ("PROMPTOPS_UI", "maybe", "PROMPTOPS_UI='maybe' is not valid: use 1/0, true/false, yes/no or on/off"),
    ("PROMPTOPS_APPROVALS", "all", "PROMPTOPS_APPROVALS='all' is not valid: use one of any, signed"),
])
def test_bad_values_name_the_variable_and_the_forms(monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                                    message: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(PromptOpsError) as caught:
        from_env(GatewaySettings)
    assert caught.value.message.startswith(message)


def test_options_win_and_the_gateway_shares_the_core_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPS_PROMPTS_DIR", "llm/prompts")
    monkeypatch.setenv("PROMPTOPS_BRANCH", "release")
    settings = from_env(GatewaySettings, prompts_dir="other")
    assert (settings.prompts_dir, settings.branch) == ("other", "release")
    assert settings.core() == from_env(Settings, prompts_dir="other")


def test_triton_url_has_one_default_the_local_server() -> None:
    assert Settings().triton_url is None and GatewaySettings().triton_url is None


def test_the_launchers_variables_are_read_by_the_one_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPS_MODEL_REPOSITORY", f"/a{os.pathsep}~/b{os.pathsep}")
    monkeypatch.setenv("PROMPTOPS_TRITON_MODELS", "echo, other,")
    monkeypatch.setenv("PROMPTOPS_TRITON_GRPC_PORT", "9101")
    monkeypatch.delenv("PROMPTOPS_TRITON_HTTP_PORT", raising=False)
    found = from_env(TritonSettings)
    assert (found.model_repositories, found.models) == ((Path("/a"), Path("~/b").expanduser()), ("echo", "other"))
    assert (found.grpc_port, found.http_port) == (9101, None)  # None: not set, the launcher's default applies


@pytest.mark.parametrize("value", ["80a", "0", "65536"])
def test_a_bad_port_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PROMPTOPS_TRITON_HTTP_PORT", value)
    with pytest.raises(PromptOpsError) as caught:
        from_env(TritonSettings)
    assert caught.value.message == f"PROMPTOPS_TRITON_HTTP_PORT={value!r} is not valid: use a port number: 1-65535"


def test_with_nothing_set_nothing_is_parsed() -> None:
    code = ("import sys; from promptops.config.reader import from_env; from promptops.config.settings import "
            "Settings, TritonSettings; from_env(Settings); from_env(TritonSettings); print('pydantic' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTOPS_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
