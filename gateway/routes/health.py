"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.deps import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (nothing else is checked)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request, service: ServiceDep) -> JSONResponse:
    """Ready when Triton is ready, the default model is loaded and the prompt store is readable.

    Public (probes carry no credential), so the reasons never show absolute paths or URL credentials."""
    settings = service.settings
    reasons: list[str] = []
    triton = await service.client.is_ready()
    model = triton and await service.client.is_ready(settings.default_model)
    if not triton:
        reasons.append(f"Triton at {settings.triton_url} is not ready")
    elif not model:
        reasons.append(f"model {settings.default_model!r} is not loaded in Triton")
    try:
        head = await asyncio.to_thread(service.store.head_commit)
        store = True
    except Exception as exc:  # any failure to read the store means "not ready", with the reason
        head, store = None, False
        reasons.append(f"prompt store not readable: {request.app.state.redact(str(exc))}")
    checks = {"triton": triton, "model": model, "store": store, "commit": head}
    if reasons:
        body = {"status": "unready", "checks": checks,
                "error": {"type": "not_ready", "message": "; ".join(reasons),
                          "fix": "start Triton (promptops up) and check PROMPTOPS_TRITON_URL / PROMPTOPS_MODEL"}}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})
