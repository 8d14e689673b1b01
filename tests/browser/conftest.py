"""Browser fixtures: the real app (UI + API) in a uvicorn thread against the echo model, and Chromium.

Chromium is Debian's (`bash scripts/setup-browser.sh`); never `playwright install`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptops import triton

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"


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
def ui(repo: Any, echo_server: triton.TritonConfig) -> Iterator[dict[str, Any]]:
    """The gateway with its UI on a free port; prompts support v1 (approved) and v2 (draft)."""
    from gateway.app import create_app
    from gateway.server import ServerThread
    from gateway.settings import GatewaySettings

    repo.commit({"prompts/support.json": doc("S1 ")}, "support v1")
    repo.git("tag", "-a", "-m", "approve", "prompts/support/v1")
    repo.commit({"prompts/support.json": doc("S2 ")}, "support v2")
    settings = GatewaySettings(repo=repo.path, triton_url=echo_server.grpc_url, default_model="echo",
                               admin_token=None, serve_drafts=False, store_url=None, allow_approve=True)
    with ServerThread(create_app(settings)) as url:
        yield {"url": url, "repo": repo}


@pytest.fixture
def page(browser: Any, ui: dict[str, Any]) -> Iterator[Any]:
    """A fresh page; fails the test on any request that leaves this machine."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url)
            if not request.url.startswith((ui["url"], "data:", "blob:")) else None)
    page.set_default_timeout(15_000)
    yield page
    context.close()
    assert outside == [], f"the UI made outside requests: {outside}"


@pytest.fixture
def screenshot() -> Any:
    """`screenshot(page, name)`: save a full-page screenshot under artifacts/screenshots/."""
    def shoot(page: Any, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return shoot
