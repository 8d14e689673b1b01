"""FastAPI dependencies as `Annotated` aliases: settings, the shared service, the admin and webhook checks."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from gateway.errors import Unauthorized
from gateway.serving import Service
from gateway.settings import GatewaySettings, get_settings
from promptops.errors import Forbidden

SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]


async def get_service(request: Request) -> Service:
    """The app's one Service (store + Triton client + metrics), opened by the lifespan.

    `async` on purpose: FastAPI runs plain `def` dependencies in its thread pool, a hop per request."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def service_of(request: Request) -> Service:
    """The Service without FastAPI's dependency machinery, for the generation hot path.

    While any dependency override is set (create_app sets one for get_settings), FastAPI rebuilds
    every sub-dependency's signature on every request: ~60 µs the chat routes do not pay this way.
    """
    return request.app.state.service


def check_admin(settings: GatewaySettings, authorization: str | None) -> None:
    """Raise Forbidden unless this caller may write (save, approve). Shared by the API and the UI."""
    if settings.read_only:
        raise Forbidden("this gateway serves a read-only clone of the prompt repository",
                        fix="save and approve in the source repository; the gateway fetches it periodically")
    if not settings.token_required:
        return
    if settings.admin_token is None:
        raise Forbidden(f"writes are disabled: the gateway listens on {settings.host}, beyond this machine, "
                        "and no admin token is set", fix="set PROMPTOPS_ADMIN_TOKEN and send it as a Bearer token")
    if not has_admin_token(settings, authorization):
        raise Forbidden("this action needs the admin token", fix="send the header 'Authorization: Bearer <token>'")


def has_admin_token(settings: GatewaySettings, authorization: str | None) -> bool:
    """True when an admin token is set and `authorization` is `Bearer <that token>` (compared in constant time)."""
    if settings.admin_token is None:
        return False
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), settings.admin_token.encode())


def webhook_signature(secret: str, body: bytes) -> str:
    """GitHub's `X-Hub-Signature-256` value for `body`: `sha256=` + HMAC-SHA256 hex digest."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_refresh(settings: GatewaySettings, body: bytes, signature: str | None, authorization: str | None) -> None:
    """Raise unless this caller may trigger a store refresh: the admin Bearer token, or a GitHub
    webhook delivery signed with PROMPTOPS_WEBHOOK_SECRET.

    Unlike check_admin, a read-only clone accepts it (refreshing is how the clone learns of
    pushes), and a loopback gateway without a token does not: an unsigned caller is never enough.
    """
    if has_admin_token(settings, authorization):
        return
    if settings.webhook_secret is None:
        raise Forbidden("refreshing needs the admin token or a signed webhook, and no webhook secret is set",
                        fix="set PROMPTOPS_WEBHOOK_SECRET (the secret of the GitHub webhook) or send "
                            "'Authorization: Bearer <admin token>'")
    if signature is None:
        raise Unauthorized("the webhook delivery has no X-Hub-Signature-256 header",
                           fix="set the webhook's secret in GitHub to PROMPTOPS_WEBHOOK_SECRET (content type "
                               "application/json), or send 'Authorization: Bearer <admin token>'")
    expected = webhook_signature(settings.webhook_secret, body)
    if not hmac.compare_digest(signature.strip().encode("latin-1"), expected.encode()):
        raise Unauthorized("the webhook signature (X-Hub-Signature-256) does not match the body",
                           fix="make the webhook's secret in GitHub equal PROMPTOPS_WEBHOOK_SECRET")


def require_admin(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """Dependency: the request may write (see check_admin)."""
    check_admin(settings, authorization)


AdminDep = Annotated[None, Depends(require_admin)]
