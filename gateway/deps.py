"""FastAPI dependencies as `Annotated` aliases: settings, the shared service, the admin check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

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
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.admin_token.encode()):
        raise Forbidden("this action needs the admin token", fix="send the header 'Authorization: Bearer <token>'")


def require_admin(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """Dependency: the request may write (see check_admin)."""
    check_admin(settings, authorization)


AdminDep = Annotated[None, Depends(require_admin)]
