"""Browser fixtures: the real app (UI + API) in a uvicorn thread against the echo model, and Chromium.

Chromium is Debian's (`bash scripts/setup-browser.sh`); never `playwright install`. Every test gets its
own config folder (the users file); `sign_in(page, url, name)` follows a sign-in link like the one
`promptops serve` prints. Pages fail the test on an outside request or a Content-Security-Policy violation.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from promptops.config.users import ROLES, Users
from promptops.triton import launcher as triton

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def sign_in(users: Users) -> Callable[..., None]:
    """`sign_in(page, url, name="Eve Editor", roles=ROLES)`: add the person, open their sign-in link."""
    def go(page: Any, url: str, name: str = "Eve Editor", roles: tuple[str, ...] = ROLES) -> None:
        token = users.add(name, f"{name.split()[0].lower()}@example.com", list(roles))[1]
        page.goto(f"{url}/signin?token={token}")  # redirected to / with the session cookie

    return go


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright.

    Module scope, not session: Playwright's sync API keeps an event loop running in the main thread
    while it is open, which breaks `asyncio.run` in every test collected after this directory."""
    if not shutil.which(CHROMIUM):
        pytest.fail("chromium is missing: run `bash scripts/setup-browser.sh`", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


def doc(system: str) -> dict[str, Any]:
    return {"config": {"temperature": "1.0", "top_p": "0.95", "max_tokens": "256"}, "system": system,
            "user": "", "template": "{system}{history}{user}"}


@pytest.fixture
def serve(echo_server: triton.TritonConfig) -> Iterator[Callable[..., str]]:
    """`serve(repo, **settings)`: the gateway with its UI for `repo` on a free port; returns its URL."""
    from gateway.app import create_app
    from gateway.server import ServerThread
    from gateway.settings import GatewaySettings

    with contextlib.ExitStack() as stack:
        def start(repo: Any, **changes: Any) -> str:
            settings = GatewaySettings(repo=repo.path, triton_url=echo_server.grpc_url, default_model="echo",
                                       admin_token=None, serve_drafts=False, store_url=None, allow_approve=True)
            return stack.enter_context(ServerThread(create_app(settings.with_(**changes))))

        yield start


@pytest.fixture
def ui(repo: Any, serve: Callable[..., str]) -> dict[str, Any]:
    """The gateway with its UI on a free port; prompts support v1 (approved) and v2 (draft)."""
    repo.commit({"prompts/support.json": doc("S1 ")}, "support v1")
    repo.git("tag", "-a", "-m", "approve", "prompts/support/v1")
    repo.commit({"prompts/support.json": doc("S2 ")}, "support v2")
    return {"url": serve(repo), "repo": repo}


@pytest.fixture
def labelled(ui: dict[str, Any]) -> dict[str, Any]:
    """`ui` plus a labels file: support production -> v1, staging -> v2."""
    ui["repo"].commit({"labels.json": {"protected": ["production"],
                                       "labels": {"support": {"production": 1, "staging": 2}}}}, "labels")
    return ui


@pytest.fixture
def page(browser: Any, serve: Callable[..., str]) -> Iterator[Any]:
    """A fresh page; fails the test on any request that leaves this machine.

    It depends on `serve` so that it closes before the gateways stop (open queue connections
    would hold a stopping server for its graceful-shutdown timeout)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url)
            if not request.url.startswith(("data:", "blob:")) and urlsplit(request.url).hostname != "127.0.0.1"
            else None)
    blocked: list[str] = []  # what the gateway's Content-Security-Policy stopped: Gradio must not need it
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.set_default_timeout(15_000)
    yield page
    context.close()
    assert outside == [], f"the UI made outside requests: {outside}"
    assert blocked == [], f"the Content-Security-Policy blocked: {blocked}"


@pytest.fixture
def screenshot() -> Any:
    """`screenshot(page, name)`: save a full-page screenshot under artifacts/screenshots/."""
    def shoot(page: Any, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return shoot
