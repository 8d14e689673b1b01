"""Gateway settings: the core's settings plus the server's, read from `PROMPTOPS_*` variables.

The fields are declared once, here and in :class:`promptops.settings.Settings`; reading the
environment (types, accepted forms, one error message per bad value) is
:func:`promptops.settings.from_env`'s job.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path

from promptops.settings import Duration, Settings, env, from_env

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: only this machine can connect."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class GatewaySettings(Settings):
    """Everything the gateway and the UI need; immutable, so one instance can be shared."""

    triton_url: str | None = "localhost:8001"
    serve_drafts: bool = False
    admin_token: str | None = field(default=None, repr=False)
    # GitHub push webhooks (POST /v1/store/refresh) are verified with this secret (X-Hub-Signature-256).
    webhook_secret: str | None = field(default=None, repr=False)
    allow_approve: bool = True
    max_body_bytes: int = 1024 * 1024
    request_timeout_s: float = 60.0
    author_name: str = "promptops UI"
    author_email: str = "promptops-ui@localhost"
    host: str = "127.0.0.1"
    port: int = 7070
    # Production topology: serve from a read-only clone of this path or URL, fetched every `refresh_s`.
    store_url: str | None = env("STORE", default=None)
    store_ref: str = "main"
    refresh_s: Duration = env("REFRESH", default=30.0)
    clone_dir: Path | None = None
    ui: bool = True

    @property
    def read_only(self) -> bool:
        """A gateway serving a clone never writes: saves and approvals belong to the source repository."""
        return self.store_url is not None

    @property
    def token_required(self) -> bool:
        """Writes need the admin token when one is set or when other machines can connect."""
        return self.admin_token is not None or not is_loopback(self.host)

    def core(self) -> Settings:
        """The core's settings for the same repository (the fields both share)."""
        return Settings(**{f.name: getattr(self, f.name) for f in fields(Settings)})


@lru_cache(maxsize=1)
def get_settings() -> GatewaySettings:
    """The process's settings (a FastAPI dependency: override it in tests with `app.dependency_overrides`)."""
    return from_env(GatewaySettings)
