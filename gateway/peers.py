"""Forwarding a verified webhook delivery to the other replicas (PROMPTOPS_PEERS, docs/deployment.md "Replicas").

GitHub delivers a push to one replica behind the load balancer; that replica refreshes itself and
forwards the same body and `X-Hub-Signature-256` to every peer, so each verifies the signature with
its own secret (nothing is trusted for being forwarded). A forwarded delivery carries
`X-PromptOps-Forwarded` and is never forwarded again, so a fleet whose peers list each other (or
themselves) cannot loop. Forwarding runs in the background with a short timeout: a peer that is down
is logged, never a failure of the webhook, and it still converges within its refresh interval.

A peer is a base URL (`http://10.0.0.7:7070`) or `name:port`, resolved at each delivery to every
address it has (a Kubernetes headless Service: one A record per ready pod). The replica itself,
when listed, is skipped (the address and port the delivery came in on).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from gateway.settings import split_list

log = logging.getLogger("gateway.peers")

FORWARDED = "x-promptops-forwarded"
REFRESH_PATH = "/v1/store/refresh"
# The request headers a forwarded delivery keeps: the signature covers the body, the event says what it is,
# and Host is one every replica of the fleet answers (it was accepted here).
KEPT = ("x-hub-signature-256", "x-github-event", "x-github-delivery", "content-type", "host", "user-agent")

_tasks: set[asyncio.Task[None]] = set()  # forwards in flight (a task nobody references may be collected)


def _url(host: str, port: int | str) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def resolve(peers: str) -> list[str]:
    """The base URLs `peers` names now: URLs as written, each `name:port` as one URL per address (deduplicated)."""
    loop = asyncio.get_running_loop()
    found: list[str] = []
    for entry in split_list(peers):
        if "://" in entry:
            found.append(entry.rstrip("/"))
            continue
        host, _, port = entry.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            log.warning("PROMPTOPS_PEERS entry %r is neither a URL nor name:port; skipped", entry)
            continue
        try:
            infos = await loop.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except OSError as exc:
            log.warning("peer %s: cannot resolve %s: %s", entry, host, exc)
            continue
        found += [_url(str(info[4][0]), port) for info in infos]
    return list(dict.fromkeys(found))


def _is_self(url: str, server: tuple[str, int] | None) -> bool:
    if server is None:
        return False
    parts = urlsplit(url)
    return parts.hostname == server[0].strip("[]") and (parts.port or 80) == server[1]


async def forward(peers: str, body: bytes, headers: Mapping[str, str], server: tuple[str, int] | None,
                  timeout_s: float) -> dict[str, int | str]:
    """POST the delivery to every peer at once; each peer's status (or why it failed), also logged."""
    import httpx

    outcome: dict[str, int | str] = {}
    try:
        targets = [url for url in await resolve(peers) if not _is_self(url, server)]
        if not targets:
            return outcome
        sent = {key: value for key, value in headers.items() if key.lower() in KEPT}
        sent[FORWARDED] = "1"
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:
            async def one(url: str) -> None:
                try:
                    response = await client.post(url + REFRESH_PATH, content=body, headers=sent)
                except httpx.HTTPError as exc:
                    outcome[url] = f"{type(exc).__name__}: {exc}"
                    log.warning("forwarding the webhook to peer %s failed: %s", url, outcome[url])
                    return
                outcome[url] = response.status_code
                if response.status_code >= 400:
                    log.warning("peer %s answered the forwarded webhook with %d: %s", url, response.status_code,
                                response.text[:300])
            await asyncio.gather(*(one(url) for url in targets))
    except Exception:  # never let a forward's failure escape into the event loop's logs unexplained
        log.exception("forwarding the webhook to peers failed")
    return outcome


def forward_in_background(peers: str, body: bytes, headers: Iterable[tuple[str, str]],
                          server: tuple[str, int] | None, timeout_s: float) -> asyncio.Task[dict[str, int | str]]:
    """Start :func:`forward` without waiting for it (the webhook's answer never waits for a peer)."""
    task = asyncio.create_task(forward(peers, body, dict(headers), server, timeout_s), name="promptops-peer-forward")
    _tasks.add(task)  # type: ignore[arg-type]
    task.add_done_callback(_tasks.discard)  # type: ignore[arg-type]
    return task


__all__ = ["FORWARDED", "forward", "forward_in_background", "resolve"]
