"""Gateway settings, read from `PROMPTOPS_*` environment variables (or passed by `promptops serve`)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from promptops.settings import Settings, find_repo_root

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"PROMPTOPS_{name}", default)


def _flag(name: str, default: bool = False) -> bool:
    value = _env(name)
    return default if value == "" else value.strip().lower() in ("1", "true", "yes", "on")


def parse_duration(text: str) -> float:
    """`30`, `30s`, `5m`, `1h` or `250ms` as seconds; 0 disables."""
    text = text.strip().lower()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text) if text else 0.0


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: only this machine can connect."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway and the UI need; immutable, so one instance can be shared."""

    repo: Path = field(default_factory=lambda: Path(_env("REPO")) if _env("REPO") else find_repo_root())
    prompts_dir: str = field(default_factory=lambda: _env("PROMPTS_DIR", "prompts"))
    branch: str | None = field(default_factory=lambda: _env("BRANCH") or None)
    triton_url: str = field(default_factory=lambda: _env("TRITON_URL", "localhost:8001"))
    default_model: str = field(default_factory=lambda: _env("MODEL", "smollm2-135m"))
    serve_drafts: bool = field(default_factory=lambda: _flag("SERVE_DRAFTS"))
    admin_token: str | None = field(default_factory=lambda: _env("ADMIN_TOKEN") or None, repr=False)
    # GitHub push webhooks (POST /v1/store/refresh) are verified with this secret (X-Hub-Signature-256).
    webhook_secret: str | None = field(default_factory=lambda: _env("WEBHOOK_SECRET") or None, repr=False)
    allow_approve: bool = field(default_factory=lambda: _flag("ALLOW_APPROVE", True))
    max_body_bytes: int = field(default_factory=lambda: int(_env("MAX_BODY_BYTES", str(1024 * 1024))))
    request_timeout_s: float = field(default_factory=lambda: float(_env("REQUEST_TIMEOUT_S", "60")))
    author_name: str = field(default_factory=lambda: _env("AUTHOR_NAME", "promptops UI"))
    author_email: str = field(default_factory=lambda: _env("AUTHOR_EMAIL", "promptops-ui@localhost"))
    host: str = field(default_factory=lambda: _env("HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(_env("PORT", "7070")))
    # Production topology: serve from a read-only clone of this path or URL, fetched every `refresh_s`.
    store_url: str | None = field(default_factory=lambda: _env("STORE") or None)
    store_ref: str = field(default_factory=lambda: _env("STORE_REF", "main"))
    refresh_s: float = field(default_factory=lambda: parse_duration(_env("REFRESH", "30s")))
    clone_dir: Path | None = field(default_factory=lambda: Path(_env("CLONE_DIR")) if _env("CLONE_DIR") else None)
    ui: bool = field(default_factory=lambda: _flag("UI", True))

    @property
    def read_only(self) -> bool:
        """A gateway serving a clone never writes: saves and approvals belong to the source repository."""
        return self.store_url is not None

    @property
    def token_required(self) -> bool:
        """Writes need the admin token when one is set or when other machines can connect."""
        return self.admin_token is not None or not is_loopback(self.host)

    def core(self) -> Settings:
        """The core's settings for the same repository."""
        return Settings(repo=self.repo, prompts_dir=self.prompts_dir, triton_url=self.triton_url,
                        default_model=self.default_model, branch=self.branch)

    def with_(self, **changes: object) -> GatewaySettings:
        """A copy with some fields changed (tests, `promptops serve`)."""
        return replace(self, **changes)  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def get_settings() -> GatewaySettings:
    """The process's settings (a FastAPI dependency: override it in tests with `app.dependency_overrides`)."""
    return GatewaySettings()
