"""Where prompts come from (`GET /v1/store`) and refreshing it at once (`POST /v1/store/refresh`).

The refresh endpoint is what a GitHub push webhook calls, so a read-only clone serves a
new commit, approval or label move within seconds instead of one refresh interval. With
PROMPTOPS_PEERS, the replica that gets the delivery forwards it to the others (gateway/peers.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from gateway import peers
from gateway.deps import CallerDep, ServiceDep, SettingsDep, check_refresh, get_auth, service_of
from gateway.errors import without_url_credentials

router = APIRouter(prefix="/v1/store", tags=["health"])


def _is_url(source: str) -> bool:
    return "://" in source or (":" in source.split("/", 1)[0] and not source.startswith("/"))  # scp-like git@h:x


@router.get("")
def store_info(request: Request, service: ServiceDep, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    """Where prompts are served from, and the last refresh.

    URL credentials (`https://user:token@host`) are never shown; file-system paths (the repository,
    a local `--store`, paths in a refresh error) only to a signed-in caller."""
    redact = without_url_credentials if caller is not None else request.app.state.redact
    source = settings.store_url
    if source is not None:
        source = without_url_credentials(source) if _is_url(source) or caller is not None else None
    refresh = service.last_refresh
    if refresh is not None and "error" in refresh:
        refresh = {**refresh, "error": redact(str(refresh["error"]))}
    serving = service.live.state()
    if "error" in serving:
        serving["error"] = redact(serving["error"])
    return {"repo": str(service.store.repo) if caller is not None else None, "branch": service.store.branch,
            "source": source, "read_only": settings.read_only, "commit": service.store.head_commit(),
            "serving": serving, "refresh": refresh}


@router.post("/refresh")
async def refresh(request: Request, settings: SettingsDep) -> dict[str, Any]:
    """Fetch the read-only clone now (or re-read the repository served in place).

    Accepts a GitHub webhook delivery signed with PROMPTOPS_WEBHOOK_SECRET (`X-Hub-Signature-256`),
    or a signed-in deployer (`Authorization: Bearer <token>`); anything else is refused (401 without
    a valid credential or signature, 403 without the deployer role or, for a signed delivery, when no
    secret is set) before anything is fetched. A `ping` event only checks the signature. Answers
    `{"refreshed": <anything changed>, "head": <serving commit>}`.
    """
    body = await request.body()  # the raw bytes: the signature covers them exactly
    signature, user = request.headers.get("x-hub-signature-256"), get_auth(request).caller_of(request)
    check_refresh(settings, body, signature, user)
    service = service_of(request)
    if request.headers.get("x-github-event") == "ping":
        return {"refreshed": False, "head": await asyncio.to_thread(service.store.head_commit), "event": "ping"}
    if settings.peers and user is None and signature is not None and peers.FORWARDED not in request.headers:
        # A verified delivery that came from GitHub: the other replicas get it too, each checking the signature
        # itself (gateway/peers.py). In the background: neither a slow peer nor our own fetch waits for the other.
        peers.forward_in_background(settings.peers, body, request.headers.items(), request.scope.get("server"),
                                    settings.peer_timeout_s)
    changed, head = await service.refresh()
    return {"refreshed": changed, "head": head}
