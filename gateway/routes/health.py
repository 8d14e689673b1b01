"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.deps import ServiceDep
from gateway.limits import RETRY_AFTER_S

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (nothing else is checked)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request, service: ServiceDep) -> JSONResponse:
    """Ready when Triton is ready, the default model is loaded and the prompt store is readable.

    When the newest commit does not validate, still ready (the last good commit serves), with `degraded`
    saying why and `problems` listing what to fix.

    Draining (SIGTERM, gateway/drain.py): 503 at once with `"status": "draining"`, nothing else checked, so
    the load balancer stops sending while the streams in flight finish.

    Public (probes carry no credential), so the reasons never show absolute paths or URL credentials."""
    if service.draining:
        return JSONResponse({"status": "draining", "error": {
            "type": "draining", "message": "this gateway is shutting down: streams in flight finish, new "
                                           "generations are refused", "fix": "send requests to another replica"}},
            status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
    settings = service.settings
    reasons: list[str] = []
    triton = await service.client.is_ready()
    model = triton and await service.client.is_ready(settings.default_model)
    if not triton:
        reasons.append(f"Triton at {service.client.url} is not ready")
    elif not model:
        reasons.append(f"model {settings.default_model!r} is not loaded in Triton")
    live = service.live
    if not live.fresh():
        await live.refresh()  # in a worker thread: never waits on a writer
    state = live.state()
    store = live.catalog is not None
    if not store:
        reasons.append("prompt store not readable: " + request.app.state.redact(
            state.get("error") or state.get("reason") or "not read yet"))
    checks = {"triton": triton, "model": model, "store": store, "commit": state["commit"]}
    if reasons:
        body = {"status": "unready", "checks": checks,
                "error": {"type": "not_ready", "message": "; ".join(reasons),
                          "fix": "start Triton (promptops up) and check PROMPTOPS_TRITON_URL / PROMPTOPS_MODEL"}}
        return JSONResponse(body, status_code=503)
    if state["degraded"]:
        # Still ready: the last good commit serves. The probe must not take the fleet down for a bad commit.
        return JSONResponse({"status": "ready", "degraded": request.app.state.redact(
            state.get("reason") or state.get("error") or ""), "problems": state.get("problems", []),
            "checks": checks})
    return JSONResponse({"status": "ready", "checks": checks})
