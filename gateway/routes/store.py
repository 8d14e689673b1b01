"""Where prompts come from (`GET /v1/store`) and refreshing it at once (`POST /v1/store/refresh`).

The refresh endpoint is what a GitHub push webhook calls, so a read-only clone serves a
new commit, approval or label move within seconds instead of one refresh interval.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from gateway.deps import ServiceDep, SettingsDep, check_refresh, service_of

router = APIRouter(prefix="/v1/store", tags=["health"])


@router.get("")
def store_info(service: ServiceDep, settings: SettingsDep) -> dict[str, Any]:
    """Where prompts are served from, and the last refresh."""
    return {"repo": str(service.store.repo), "branch": service.store.branch, "source": settings.store_url,
            "read_only": settings.read_only, "commit": service.store.head_commit(),
            "refresh": service.last_refresh}


@router.post("/refresh")
async def refresh(request: Request, settings: SettingsDep) -> dict[str, Any]:
    """Fetch the read-only clone now (or re-read the repository served in place).

    Accepts a GitHub webhook delivery signed with PROMPTOPS_WEBHOOK_SECRET (`X-Hub-Signature-256`),
    or `Authorization: Bearer <admin token>`; anything else is refused (401 unsigned or badly
    signed, 403 when no secret is set) before anything is fetched. A `ping` event only checks the
    signature. Answers `{"refreshed": <anything changed>, "head": <serving commit>}`.
    """
    body = await request.body()  # the raw bytes: the signature covers them exactly
    check_refresh(settings, body, request.headers.get("x-hub-signature-256"), request.headers.get("authorization"))
    service = service_of(request)
    if request.headers.get("x-github-event") == "ping":
        return {"refreshed": False, "head": await asyncio.to_thread(service.store.head_commit), "event": "ping"}
    changed, head = await service.refresh()
    return {"refreshed": changed, "head": head}
