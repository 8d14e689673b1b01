"""One settings model: PROMPTOPS_* variables read through pydantic-settings, one message per bad value."""

from __future__ import annotations

import pytest

from gateway.settings import GatewaySettings
from promptops.config.reader import from_env
from promptops.config.settings import Settings
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
    assert settings.core() == from_env(Settings, prompts_dir="other", triton_url="localhost:8001")
