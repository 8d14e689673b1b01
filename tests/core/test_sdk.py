"""The app SDK (promptops.client) against a real gateway on a loopback port and a real git repo of prompts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from gateway.app import create_app
from gateway.server import ServerThread
from gateway.settings import GatewaySettings
from promptops.client import PromptOpsWarning, Prompts, build_snapshot
from promptops.errors import PromptOpsError
from promptops.store import PromptStore
from tests.conftest import ECHO_REPOSITORY
from tests.gateway.conftest import labelled, labels, prompts  # noqa: F401 (fixtures: support v1 approved, v2 draft)


class Clock:
    """An injectable clock: `now` moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def settle() -> None:
    """Wait for the background refreshes to finish."""
    for thread in threading.enumerate():
        if thread.name == "promptops-refresh":
            thread.join(timeout=30)


@pytest.fixture
def gateway(repo: Any, prompts: dict[str, str], echo_server: Any) -> Iterator[ServerThread]:  # noqa: F811
    settings = GatewaySettings(repo=repo.path, triton_url=echo_server.grpc_url, default_model="echo",
                               admin_token=None, store_url=None)
    server = ServerThread(create_app(settings, ui=False))
    server.__enter__()
    yield server
    server.__exit__(None, None, None)


def test_a_cached_version_is_fresh_until_its_ttl(gateway: ServerThread) -> None:
    clock = Clock()
    sdk = Prompts(url=gateway.url, ttl_s=60, clock=clock)
    assert sdk.get("support").version == sdk.get("support").version == 1
    clock.now = 59
    sdk.get("support")
    assert sdk.requests == 1
    clock.now = 61
    sdk.get("support")
    settle()
    assert sdk.requests == 2


def test_an_unchanged_version_is_revalidated_with_a_304(gateway: ServerThread) -> None:
    clock = Clock()
    sdk = Prompts(url=gateway.url, ttl_s=60, clock=clock)
    first = sdk.get("support")
    clock.now = 100
    sdk.get("support")
    settle()
    assert (sdk.requests, sdk.not_modified) == (2, 1)
    assert sdk.get("support") is first and sdk.requests == 2  # fresh again until 160


def test_an_expired_version_is_served_at_once_and_refreshed_behind(labelled: Any, gateway: ServerThread,  # noqa: F811
                                                                   repo: Any) -> None:
    clock = Clock()
    sdk = Prompts(url=gateway.url, ttl_s=60, clock=clock)
    assert sdk.get("support").version == 1  # production -> v1
    repo.commit({"labels.json": labels(production=2)}, "production -> v2")
    clock.now = 61
    assert sdk.get("support").version == 1  # stale, at once
    settle()
    assert sdk.get("support").version == 2
    assert sdk.get("support").render(user="hi") == "S2 hi"


def test_a_stopped_gateway_falls_back_to_the_snapshot_with_a_warning(gateway: ServerThread, repo: Any,
                                                                      tmp_path: Any) -> None:
    snapshot = tmp_path / "prompts.snapshot.json"
    snapshot.write_text(json.dumps(build_snapshot(PromptStore(repo.path))))
    url = gateway.url
    gateway.__exit__(None, None, None)
    with pytest.warns(PromptOpsWarning, match="serving 'support' from the bundled snapshot"):
        version = Prompts(url=url, snapshot=snapshot, timeout_s=2).get("support")
    assert (version.version, version.approved, version.render(user="hi")) == (1, True, "S1 hi")


def test_no_gateway_and_no_snapshot_raises_with_a_fix(gateway: ServerThread) -> None:
    url = gateway.url
    gateway.__exit__(None, None, None)
    with pytest.raises(PromptOpsError, match="no snapshot") as caught:
        Prompts(url=url, timeout_s=2).get("support")
    assert "promptops export" in (caught.value.fix or "")


@pytest.mark.parametrize("variables, history", [({"user": "hi"}, []),
                                                ({"user": "and now?"}, [{"role": "user", "content": "q"},
                                                                        {"role": "assistant", "content": "a"}])])
def test_the_sdk_renders_what_the_gateway_renders(gateway: ServerThread, variables: dict[str, str],
                                                  history: list[dict[str, str]]) -> None:
    answer = requests.post(f"{gateway.url}/v1/prompts/support/render",
                           json={"variables": variables, "history": history}, timeout=30).json()
    version = Prompts(url=gateway.url).get("support")
    assert version.messages(variables["user"], history) == [{"role": "user", "content": answer["text"]}]
    if not history:
        assert version.render(**variables) == answer["text"]


def test_a_gateway_refusal_is_raised_not_served_from_the_snapshot(gateway: ServerThread) -> None:
    with pytest.raises(PromptOpsError, match="fresh"):
        Prompts(url=gateway.url).get("fresh")  # never approved: the gateway refuses it


def test_a_local_clone_serves_the_approved_version(repo: Any, prompts: dict[str, str]) -> None:  # noqa: F811
    version = Prompts(repo=repo.path).get("support")
    assert (version.version, version.commit, version.config["max_tokens"]) == (1, prompts["support@1"], 256)


def test_a_chat_prompt_gives_its_messages_with_the_history_in_place(repo: Any) -> None:
    repo.commit({"prompts/bot.json": {"config": {}, "system": "Be brief.", "model": "echo", "messages": [
        {"role": "system", "content": "{system}"}, {"history": True}, {"role": "user", "content": "{user}"}]}},
        "bot v1")
    repo.git("tag", "-a", "-m", "approve", "prompts/bot/v1")
    version = Prompts(repo=repo.path).get("bot")
    assert version.messages("hi", [{"role": "user", "content": "q"}]) == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}, {"role": "user", "content": "hi"}]


def test_a_chat_prompt_naming_no_model_renders_with_the_model_given(repo: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("PROMPTOPS_MODEL_REPOSITORY", str(ECHO_REPOSITORY))  # echo's ChatML template
    repo.commit({"prompts/bot.json": {"config": {}, "messages": [{"role": "user", "content": "{user}"}]}}, "bot v1")
    repo.git("tag", "-a", "-m", "approve", "prompts/bot/v1")
    version = Prompts(repo=repo.path).get("bot")
    with pytest.raises(PromptOpsError, match="names no model"):
        version.render(user="hi")
    assert version.render(model="echo", user="hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
