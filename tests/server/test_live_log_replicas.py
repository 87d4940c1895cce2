"""The console's live request log on Redis (`observability.recent_shared` over
`storage.recent_redis`): two `gatewise serve` processes on one Redis each show every request
either of them served, in one order, as soon as somebody watches on either; and the feed
itself keeps the in-process ring's contract (numbered in order, `after` answers what came
since, `limit` keeps the newest, a reader too far behind is told `dropped`) under writers
racing from two replicas (Redis: skips without it, fails in CI)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewise.observability.recent_shared import SharedRecentFeed
from gatewise.storage.recent_redis import RedisRecentLog
from tests.fakes.ports import free_port
from tests.fakes.server import FakeServer
from tests.fakes.services import drop_redis_prefix, require_redis
from tests.waiting import wait_until

MASTER = "sk-live-log-replicas"
AUTH = {"authorization": f"Bearer {MASTER}"}


@pytest.fixture
def prefix() -> Iterator[str]:
    url = require_redis()
    prefix = f"gatewise-test:live-log:{os.getpid()}:{os.urandom(4).hex()}:"
    yield prefix
    asyncio.run(drop_redis_prefix(url, prefix))


def _serve(config: dict[str, Any], tmp: Path) -> tuple[subprocess.Popen[str], str, Path]:
    tmp.mkdir(parents=True)
    path = tmp / "gatewise.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = tmp / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gatewise.cli.main", "serve", "-c",
                                 str(path), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=out, text=True,
                                env=dict(os.environ))
    return proc, f"http://127.0.0.1:{port}", log


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _up(proc: subprocess.Popen[str], url: str, log: Path) -> bool:
    if proc.poll() is not None:
        pytest.fail(f"gatewise serve exited: {log.read_text()}")
    return _ready(url)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _recent(url: str, after: int = 0) -> dict[str, Any]:
    r = httpx.get(f"{url}/admin/requests/recent?after={after}", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _chat(url: str, text: str) -> str:
    r = httpx.post(url + "/v1/chat/completions", headers=AUTH, timeout=30,
                   json={"model": "gpt", "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]


def test_two_serve_processes_on_one_redis_each_show_every_request(
        openai_fake: FakeServer, prefix: str, tmp_path: Path) -> None:
    config = {"models": {"gpt": [{"model": "openai/gpt-4o-mini",
                                  "api_base": openai_fake.url + "/v1", "api_key": "sk-up"}]},
              "server": {"master_key": MASTER, "warmup": False, "shutdown_grace_s": 1.0},
              "router": {"retry": {"max_retries": 0}},
              "storage": {"redis_url": require_redis(), "redis_prefix": prefix}}
    procs = []
    try:
        started = []
        for name in ("a", "b"):  # both start at once (a loaded machine takes its time)
            cfg = {**config, "storage": {**config["storage"],
                                         "state_dir": str(tmp_path / name / "state")}}
            started.append(_serve(cfg, tmp_path / name))
            procs.append(started[-1][0])
        for proc, url, log in started:
            wait_until(lambda proc=proc, url=url, log=log: _up(proc, url, log), 120,
                       what=f"gatewise serve at {url}", every_s=0.2)
        urls = [url for _, url, _ in started]
        a, b = urls
        start = _recent(a)["next"]  # somebody watches, on a only
        # b hears of it within its poll (1 s); requests before that are not kept.
        sent: list[str] = []

        def b_logs() -> bool:
            sent.append(_chat(b, "warming"))
            return any(r["request_id"] in sent for r in _recent(a, start)["data"])

        wait_until(b_logs, 10, what="b filling the shared log", every_s=0.2)
        # b keeps every request once it logs one, but the last warm-up may still sit in its
        # buffer (flushed every 0.1 s): the 8 below are counted only after it has landed.
        wait_until(lambda: sent[-1] in {r["request_id"] for r in _recent(a, start)["data"]},
                   5, what="b's last warm-up in the shared log", every_s=0.05)
        after = _recent(a, start)["next"]
        ids = [_chat(b if i % 2 else a, f"request {i}") for i in range(8)]

        def both_show_all() -> bool:
            return all({r["request_id"] for r in _recent(u, after)["data"]} == set(ids)
                       for u in urls)

        wait_until(both_show_all, 10, what="every request on both replicas", every_s=0.1)
        for u in urls:
            page = _recent(u, after)
            seqs = [r["seq"] for r in page["data"]]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) == 8
            assert page["next"] == seqs[-1] and page["dropped"] is False
            assert {r["status"] for r in page["data"]} == {200}
        assert _recent(a, _recent(a, after)["next"])["data"] == []  # nothing new since
    finally:
        for proc in procs:
            _stop(proc)


async def test_the_feed_keeps_the_rings_contract_with_two_writers(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(require_redis())
    # Two replicas' feeds, each with its own store object on the same keys.
    one = SharedRecentFeed(RedisRecentLog(client=client, prefix=prefix, capacity=250))
    two = SharedRecentFeed(RedisRecentLog(client=client, prefix=prefix, capacity=250))
    try:
        assert not one.active and await one.read(0, limit=10) == ([], 0, False)
        assert one.active  # reading marks the log watched
        for i in range(30):  # two replicas' batches land interleaved
            (one if i % 3 else two).add({"n": i, "team": "red" if i % 2 else "blue"})
            if i % 7 == 0:
                await asyncio.gather(one.flush(), two.flush())
        await asyncio.gather(one.flush(), two.flush())
        data, newest, dropped = await two.read(0, limit=100)
        assert [r["seq"] for r in data] == list(range(1, 31)) and newest == 30
        assert sorted(r["n"] for r in data) == list(range(30)) and not dropped
        assert [r["seq"] for r in (await one.read(25, limit=100))[0]] == [26, 27, 28, 29, 30]
        newest_three, _, _ = await one.read(0, limit=3)
        assert [r["seq"] for r in newest_three] == [28, 29, 30]
        red, _, _ = await one.read(20, limit=100, keep=lambda r: r["team"] == "red")
        assert red == [r for r in data[20:] if r["team"] == "red"] and red
        for i in range(300):  # past the cap (250), so a read needs two pages (200 each)
            one.add({"n": 100 + i})
            if i % 50 == 49:
                await one.flush()
        data, newest, dropped = await one.read(30, limit=1000)
        assert newest == 330 and dropped  # 31..80 were trimmed away
        assert [r["seq"] for r in data] == list(range(81, 331))
        assert await one.read(10_000, limit=5) == (data[-5:], 330, True)  # from before a reset
    finally:
        await one.aclose()
        await two.aclose()
        await client.aclose()
