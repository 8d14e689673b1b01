"""FastAPI dependencies as `Annotated` aliases: settings, the shared service, the role and webhook checks."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import Depends, Request

from gateway.auth import Auth, require
from gateway.errors import Unauthorized
from gateway.limits import address_of
from gateway.serving import Service, sticky_key
from gateway.settings import GatewaySettings, get_settings
from promptops.config.users import User
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


def identity(request: Request) -> tuple[User | None, str | None]:
    """Who is asking, for the generation routes: the signed-in person (None: nobody, an unknown token
    included) and the key their limits count under (None when there is no per-caller limit)."""
    user = request.app.state.auth.caller_of(request)
    return user, request.app.state.service.limits.caller(user, address_of(request))


STICKY_HEADER = "x-prompt-sticky"


def sticky_of(request: Request, user: User | None, openai_user: str | None = None) -> str:
    """An HTTP caller's canary sticky key (gateway/serving.py `sticky_key`): the signed-in person, else the
    caller's own key (`X-Prompt-Sticky`, else OpenAI's `user` field), else the client address."""
    given = request.headers.get(STICKY_HEADER) or openai_user
    return sticky_key(user, given and f"key:{given}", f"addr:{address_of(request)}")


def webhook_signature(secret: str, body: bytes) -> str:
    """GitHub's `X-Hub-Signature-256` value for `body`: `sha256=` + HMAC-SHA256 hex digest."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_refresh(settings: GatewaySettings, body: bytes, signature: str | None, user: User | None) -> None:
    """Raise unless this caller may trigger a store refresh: a signed-in deployer (Bearer token or
    session), or a GitHub webhook delivery signed with PROMPTOPS_WEBHOOK_SECRET.

    Unlike the other writes, a read-only clone accepts it (refreshing is how the clone learns of
    pushes). An invalid credential falls through to the webhook check: the answer names what is missing.
    """
    if user is not None:
        user.require("deployer", "refresh the store")
        return
    if settings.webhook_secret is None:
        if signature is not None:
            raise Forbidden("this delivery is signed, but no webhook secret is set to check it against",
                            fix="set PROMPTOPS_WEBHOOK_SECRET to the secret of the GitHub webhook")
        raise Unauthorized("refreshing needs a deployer's token or a signed webhook",
                           fix="send 'Authorization: Bearer <token>' of a user with the deployer role, or set "
                               "PROMPTOPS_WEBHOOK_SECRET (the secret of the GitHub webhook)")
    if signature is None:
        raise Unauthorized("the webhook delivery has no X-Hub-Signature-256 header",
                           fix="set the webhook's secret in GitHub to PROMPTOPS_WEBHOOK_SECRET (content type "
                               "application/json), or send 'Authorization: Bearer <token>' of a deployer")
    expected = webhook_signature(settings.webhook_secret, body)
    if not hmac.compare_digest(signature.strip().encode("latin-1"), expected.encode()):
        raise Unauthorized("the webhook signature (X-Hub-Signature-256) does not match the body",
                           fix="make the webhook's secret in GitHub equal PROMPTOPS_WEBHOOK_SECRET")


def get_auth(request: Request) -> Auth:
    """The app's credentials and sessions (created with the app)."""
    return request.app.state.auth


def _role(role: str, action: str) -> Any:
    async def dependency(request: Request, settings: SettingsDep) -> User:  # async: no thread-pool hop
        return require(settings, get_auth(request), request, role, action)

    dependency.__name__ = f"require_{role}"
    return Depends(dependency)


# Who may do what (docs/security.md): the signed-in person, checked on every bind address.
EditorDep = Annotated[User, _role("editor", "save prompts")]
ApproverDep = Annotated[User, _role("approver", "approve or revoke versions")]
DeployerDep = Annotated[User, _role("deployer", "move labels")]


async def get_caller(request: Request) -> User | None:
    """The signed-in person, or None (reads that show more to signed-in callers)."""
    return get_auth(request).caller_of(request)


CallerDep = Annotated[User | None, Depends(get_caller)]
