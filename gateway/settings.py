"""Gateway settings: the core's settings plus the server's, read from `PROMPTOPS_*` variables.

The fields are declared once, here and in :class:`promptops.settings.Settings`; reading the
environment (types, accepted forms, one error message per bad value) is
:func:`promptops.config.reader.from_env`'s job.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Literal

from promptops.config.reader import from_env
from promptops.config.settings import Duration, Settings, env

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: only this machine can connect."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """True for the any-address binds (0.0.0.0, ::) that have no name of their own."""
    return host.strip("[]") in ("", "0.0.0.0", "::")


def host_name(host: str) -> str:
    """A Host header or name without its port: `Example.com:7070` -> `example.com`, `::1` -> `[::1]`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    if host.count(":") > 1:  # a bare IPv6 address
        return f"[{host}]"
    return host.partition(":")[0].rstrip(".")


def split_list(text: str | None) -> list[str]:
    """A comma-separated setting as its non-empty items."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class GatewaySettings(Settings):
    """Everything the gateway and the UI need; immutable, so one instance can be shared."""

    serve_drafts: bool = False
    # A token with every role, for automation; what it does is recorded as author_name/author_email.
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
    # The read-only clone's folder (PROMPTOPS_CLONE_DIR; one process each). None: a folder of this process's own
    # under ~/.cache/promptops/clones (promptops/store/remote.py), reused after a restart.
    clone_dir: Path | None = None
    # Replicas a verified webhook delivery is forwarded to (docs/deployment.md "Replicas"), comma-separated:
    # base URLs (`http://10.0.0.7:7070`) and `name:port` entries resolved at each delivery to every address
    # (a headless Service). A forwarded delivery is never forwarded again; `peer_timeout_s` bounds each try.
    peers: str = ""
    peer_timeout_s: Duration = env("PEER_TIMEOUT", default=3.0)
    ui: bool = True
    # Limits of the generation routes (gateway/limits.py, docs/gateway.md "Limits"): the most `max_tokens` a
    # request or prompt may ask for (None: the model's `max_model_len` from its model.json, else 2048), and
    # generation requests in flight per caller (credential or client IP; 0: unlimited).
    max_tokens_cap: int | None = env("MAX_TOKENS", default=None)
    max_concurrent_per_caller: int = env("MAX_CONCURRENT", default=8)
    # The most past turns a request's history may hold (PROMPTOPS_MAX_HISTORY_TURNS; 0: unlimited); more: 422.
    max_history_turns: int = 200
    # Generations in flight on the whole server, and how many may wait in line (for up to queue_wait_s) when
    # all are taken; past that, 429 with Retry-After (0: no bound).
    max_in_flight: int = env("MAX_IN_FLIGHT", default=64)
    max_queued: int = env("MAX_QUEUED", default=64)
    queue_wait_s: Duration = env("QUEUE_WAIT", default=10.0)
    # Draining on SIGTERM (gateway/drain.py, docs/deployment.md "Draining"): /readyz answers 503 and new
    # generations 503 at once; the server keeps its port open `drain_delay_s`, then stops, and streams in
    # flight get until `drain_grace_s` after the signal to finish (the delay is counted inside it).
    drain_delay_s: Duration = env("DRAIN_DELAY", default=5.0)
    drain_grace_s: Duration = env("DRAIN_GRACE", default=30.0)
    # The serving policy (promptops/policy.py, docs/security.md): anyone may be served versions nobody approved
    # (pins such as name@2, name@head) and posted /prompt bodies that match no reviewed version. Off: only
    # signed-in editors and approvers may.
    serve_unreviewed: bool = False
    # How long a write waits for another writer's repository lock before answering 503.
    lock_timeout_s: Duration = env("LOCK_TIMEOUT", default=10.0)
    # Who may do what, and browser safety (gateway/auth.py, docs/security.md). Lists are comma-separated.
    # Reads and generation: "open" (no credential) or "token"; None: open on a loopback bind, token otherwise.
    read_access: Literal["open", "token"] | None = None
    # Host header names (any port) the gateway answers; "*": any. None: 127.0.0.1, localhost, [::1] and `host`.
    allowed_hosts: str | None = None
    # Origins (scheme://host[:port]) besides the gateway's own that may send POST/PUT/PATCH/DELETE.
    trusted_origins: str = ""
    # Origins answered with CORS headers (none by default); they are trusted origins too.
    cors_origins: str = ""
    # Request records and feedback (promptops/state): a SQLAlchemy URL (a PostgreSQL one for a fleet, so every
    # replica writes to one place); None: SQLite in <repo>/.promptops/state.db; "off": keep none.
    state_url: str | None = env("STATE_URL", default=None)
    # This replica's name in request records (None: the host name).
    replica: str | None = None
    # Capture of served inputs for replay: PROMPTOPS_CAPTURE* are read by promptops/capture.py's CaptureSettings.

    @property
    def read_only(self) -> bool:
        """A gateway serving a clone never writes: saves and approvals belong to the source repository."""
        return self.store_url is not None

    @property
    def reads_need_credential(self) -> bool:
        """Reads and generation need a credential: `read_access` "token", or unset on a non-loopback bind."""
        return self.read_access == "token" or (self.read_access is None and not is_loopback(self.host))

    @property
    def host_allow_list(self) -> frozenset[str] | None:
        """Host names (lower case, IPv6 in brackets, no port) the gateway answers; None: any."""
        if self.allowed_hosts is None:
            names = set(LOOPBACK_HOSTS)
            if not is_wildcard(self.host):
                names.add(host_name(self.host))
            return frozenset(names)
        names = {host_name(name) for name in split_list(self.allowed_hosts)}
        return None if "*" in names else frozenset(names)

    @property
    def trusted_origin_set(self) -> frozenset[str]:
        """Origins besides the gateway's own allowed to change state (the CORS origins included)."""
        return frozenset(o.lower().rstrip("/") for o in (*split_list(self.trusted_origins), *self.cors_origin_list))

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.rstrip("/") for o in split_list(self.cors_origins)]

    def core(self) -> Settings:
        """The core's settings for the same repository (the fields both share)."""
        return Settings(**{f.name: getattr(self, f.name) for f in fields(Settings)})


@lru_cache(maxsize=1)
def get_settings() -> GatewaySettings:
    """The process's settings (a FastAPI dependency: override it in tests with `app.dependency_overrides`)."""
    return from_env(GatewaySettings)
