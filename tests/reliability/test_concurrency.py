"""Concurrent editors (one wins, the rest get 409 with the current version) and a 60 s soak of 50 streams."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
from rel_helpers import doc

from promptops.errors import Conflict
from promptops.store import PromptStore
from promptops.triton import launcher as triton


def texts(count: int) -> list[str]:
    return [json.dumps(doc(f"editor {i} "), indent=2) + "\n" for i in range(count)]


def assert_sound(repo, winner: str, versions: int) -> None:
    assert repo.git("show", "HEAD:prompts/support.json") + "\n" == winner
    assert (repo.path / "prompts" / "support.json").read_text() == winner
    repo.git("fsck", "--strict", "--no-dangling")
    assert repo.git("rev-list", "--min-parents=2", "HEAD") == "" and len(repo.git("log", "--format=%H").split()) == versions


@pytest.mark.parametrize("editors", [2, 8])
def test_editors_saving_at_once_through_the_api(gateway, repo, prompts, editors):
    client = gateway("127.0.0.1:9")
    barrier = threading.Barrier(editors)

    def save(text: str) -> httpx.Response:
        barrier.wait()
        return client.put("/v1/prompts/support", json={"text": text, "base_commit": prompts["support@2"]})

    with ThreadPoolExecutor(editors) as pool:
        answers = list(pool.map(save, texts(editors)))
    won = [a for a in answers if a.status_code == 200]
    assert len(won) == 1 and sorted(a.status_code for a in answers) == [200] + [409] * (editors - 1)
    assert {(a.json()["error"]["current_version"], a.json()["error"]["current_commit"]) for a in answers if a not in won} \
        == {(3, won[0].json()["version"]["commit"])}
    assert_sound(repo, texts(editors)[answers.index(won[0])], versions=3)


def _save_in_process(repo_path: str, text: str, base: str, start: multiprocessing.synchronize.Event) -> None:
    start.wait()
    try:
        PromptStore(repo_path).save("support", text, base_commit=base, author_name="P", author_email="p@q.r",
                                    message="race")
    except Conflict as exc:
        os._exit(40 + (exc.current_version or 0))
    os._exit(0)


def test_processes_saving_at_once_through_the_store(repo, prompts):
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Event()
    children = [spawn.Process(target=_save_in_process, args=(str(repo.path), text, prompts["support@2"], start))
                for text in texts(4)]
    for child in children:
        child.start()
    time.sleep(1.5)  # every child imported and waiting
    start.set()
    for child in children:
        child.join(60)
    codes = [child.exitcode for child in children]
    assert sorted(codes) == [0, 43, 43, 43]
    assert_sound(repo, texts(4)[codes.index(0)], versions=3)


@pytest.mark.slow
def test_soak_50_streams_for_60_s(repo, prompts, echo_server):
    port = triton.free_ports(1)[0]
    env = {**os.environ, "PROMPTOPS_REPO": str(repo.path), "PROMPTOPS_TRITON_URL": echo_server.grpc_url,
           "PROMPTOPS_MODEL": "echo", "PROMPTOPS_UI": "0", "PROMPTOPS_SERVE_DRAFTS": "0",
           # One caller opens all 50 streams: this run measures leaks and errors, not the per-caller limit.
           "PROMPTOPS_MAX_CONCURRENT": "0"}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory", "--port",
                               str(port), "--log-level", "warning", "--no-access-log"], env=env)
    try:
        stats = asyncio.run(soak(f"http://127.0.0.1:{port}", psutil.Process(server.pid), streams=50, seconds=60))
    finally:
        server.terminate()
        server.wait(20)
    print(f"\nsoak: {stats}")
    assert stats["errors"] == 0 and stats["ok"] > 1000
    assert stats["rss_growth"] < 0.10


async def soak(url: str, process: psutil.Process, streams: int, seconds: float) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=streams)) as client:
        for _ in range(150):  # the gateway process starting
            try:
                if (await client.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.2)
        counts = {"ok": 0, "errors": 0}
        failures: list[str] = []

        async def worker(until: float) -> None:
            while time.monotonic() < until:
                body = {"prompt": "support", "message": "soak " * 20, "stream": True}
                try:
                    async with client.stream("POST", "/v1/chat", json=body) as response:
                        text = "".join([chunk async for chunk in response.aiter_text()])
                    ok = response.status_code == 200 and "event: done" in text
                    counts["ok" if ok else "errors"] += 1
                    if not ok:
                        failures.append(f"{response.status_code} {text[-200:]}")
                except httpx.HTTPError as exc:
                    counts["errors"] += 1
                    failures.append(repr(exc))

        await asyncio.gather(*(worker(time.monotonic() + 5) for _ in range(streams)))  # warm-up
        baseline, counts = process.memory_info().rss, {"ok": 0, "errors": 0}
        failures.clear()
        started = time.monotonic()
        await asyncio.gather(*(worker(started + seconds) for _ in range(streams)))
        rss = process.memory_info().rss
        return {**counts, "per_s": round(counts["ok"] / (time.monotonic() - started)),
                "rss_mb": (round(baseline / 2**20, 1), round(rss / 2**20, 1)), "rss_growth": round(rss / baseline - 1, 4),
                "failures": failures[:3]}
