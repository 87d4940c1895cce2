"""Three `gatewise serve` processes sharing real Redis and PostgreSQL, against one fake upstream.

- Budget exactness: 64 concurrent clients spread over the three processes spend one team's
  budget; overspend is at most one request's cost, and nobody is refused while the cap still
  had room for their request.
- Crash safety: a process is killed with SIGKILL under load; afterwards the ledger's tokens
  equal the fake upstream's own count for every request a client got an answer for, and no
  request is recorded twice.
- A key revoked through one replica is refused by the others at once.

Without Redis or PostgreSQL these tests skip, except in CI (`CI=true`), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from tests.fakes.ports import free_port
from tests.fakes.server import FakeServer
from tests.fakes.services import REDIS_URL, require_pg, require_redis
from tests.waiting import wait_until

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"  # or root@: see `services`
MASTER = "sk-master-e2e-governance"
COMPLETION_TOKENS = 40
OUTPUT_PRICE = 10.0  # USD per million output tokens; input is free, so cost is exact


@pytest.fixture(scope="module", autouse=True)
def services() -> None:
    global PG_URL
    require_redis()
    PG_URL = require_pg()


class Upstream:
    """An OpenAI-shaped host that counts, per caller-chosen `user`, the tokens it billed."""

    def __init__(self) -> None:
        self.billed: dict[str, tuple[int, int]] = {}
        self.lock = threading.Lock()
        self.delay = 0.0

    def make_app(self, _server: object = None) -> web.Application:
        async def chat(request: web.Request) -> web.Response:
            body = await request.json()
            if self.delay:
                await asyncio.sleep(self.delay)
            user = body.get("user") or uuid.uuid4().hex
            prompt = 7 + len(user) % 5
            with self.lock:
                self.billed[user] = (prompt, COMPLETION_TOKENS)
            return web.json_response({
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
                "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "length", "logprobs": None,
                             "message": {"role": "assistant", "content": "ok " * 10,
                                         "refusal": None}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": COMPLETION_TOKENS,
                          "total_tokens": prompt + COMPLETION_TOKENS}})

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Upstream, str]]:
    up = Upstream()
    with FakeServer(up.make_app) as srv:
        yield up, srv.url


def _config(tmp: Path, upstream_url: str, schema: str, prefix: str) -> Path:
    cfg = {
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": f"{upstream_url}/v1",
                            "api_key": "sk-upstream-canary-1234567890",
                            "prices": {"input": 0.0, "output": OUTPUT_PRICE}}]},
        "server": {"master_key": MASTER, "warmup": False},
        "storage": {"database": "postgres", "postgres_url": PG_URL, "postgres_schema": schema,
                    "redis_url": REDIS_URL, "redis_prefix": prefix, "counters": "redis",
                    "state_dir": str(tmp / "state")},
        "accounting": {"ledger_flush_s": 0.2},
        "router": {"retry": {"max_retries": 0}},
    }
    path = tmp / "gatewise.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class Replica:
    def __init__(self, config: Path, tmp: Path, n: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"replica{n}.log"
        env = {**os.environ, "GATEWISE_STATE_DIR": str(tmp / "state")}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gatewise.cli.main", "serve", "--config", str(config),
                 "--port", str(self.port), "--no-warmup", "--log-level", "info"],
                stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("replica did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def cluster(tmp_path: Path, upstream: tuple[Upstream, str]) -> Iterator[list[Replica]]:
    schema = f"gw_e2e_{uuid.uuid4().hex[:10]}"
    prefix = f"gw-e2e-{uuid.uuid4().hex[:10]}:"
    config = _config(tmp_path, upstream[1], schema, prefix)
    replicas = [Replica(config, tmp_path, i) for i in range(3)]
    try:
        for r in replicas:
            r.wait_ready()
        yield replicas
    finally:
        for r in replicas:
            r.stop()
        _drop(schema, prefix)


def _drop(schema: str, prefix: str) -> None:
    import psycopg
    import redis

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    r = redis.Redis.from_url(REDIS_URL)
    for k in r.scan_iter(match=f"{prefix}*"):
        r.delete(k)
    r.close()


def _admin(url: str, method: str, path: str, body: Any = None, key: str = MASTER) -> Any:
    resp = httpx.request(method, f"{url}{path}", json=body,
                         headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert resp.status_code < 300, resp.text
    return resp.json()


async def _chat(client: httpx.AsyncClient, url: str, key: str, rid: str) -> httpx.Response:
    return await client.post(
        f"{url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "x-request-id": rid},
        json={"model": "gpt", "messages": [{"role": "user", "content": "hello"}],
              "max_tokens": COMPLETION_TOKENS, "user": rid})


def test_budget_is_exact_across_three_replicas_and_64_clients(cluster: list[Replica]) -> None:
    url0 = cluster[0].url
    _admin(url0, "POST", "/admin/teams", {"id": "payments"})
    key = _admin(url0, "POST", "/admin/keys", {"name": "svc", "team": "payments"})["key"]
    cost = COMPLETION_TOKENS * OUTPUT_PRICE / 1e6
    cap_requests = 150
    limit = cost * cap_requests + cost / 2  # room for 150 requests, not 151
    _admin(url0, "POST", "/admin/budgets", {"scope": "team", "subject": "payments",
                                             "period": "day", "limit_usd": limit})

    async def run() -> list[int]:
        statuses: list[int] = []
        counter = iter(range(10**6))
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as c:
            async def client(i: int) -> None:
                while True:
                    n = next(counter)
                    r = await _chat(c, cluster[n % 3].url, key, f"b{n}")
                    statuses.append(r.status_code)
                    if r.status_code == 402:
                        assert r.json()["error"]["code"] == "budget_exceeded"
                        return
                    assert r.status_code == 200, r.text

            await asyncio.gather(*(client(i) for i in range(64)))
        return statuses

    statuses = asyncio.run(run())
    ok = statuses.count(200)
    # Worst case equals the real cost here (input is free, completion = max_tokens), so exact
    # enforcement admits exactly as many requests as fit: no overspend, no false denial.
    assert ok == cap_requests, (ok, statuses.count(402))
    assert statuses.count(402) == 64

    def ledger_cost() -> float:
        rows = _admin(url0, "GET", "/admin/usage?group_by=team")["data"]
        return sum(r["cost_usd"] for r in rows if r["group"]["team"] == "payments")

    # Each replica's ledger flushes every 0.2 s: wait for every answered request to land.
    wait_until(lambda: ledger_cost() >= cost * cap_requests * (1 - 1e-9),
               what="the ledgers of three replicas flushing")
    usage = _admin(url0, "GET", "/admin/usage?group_by=team")
    row = next(r for r in usage["data"] if r["group"]["team"] == "payments")
    assert row["cost_usd"] <= limit + cost
    assert row["cost_usd"] == pytest.approx(cost * cap_requests)
    budgets = _admin(url0, "GET", "/admin/budgets")["data"]
    assert budgets[0]["spent"]["usd"] == pytest.approx(cost * cap_requests)


def test_kill_9_loses_no_answered_request_and_duplicates_none(
        cluster: list[Replica], upstream: tuple[Upstream, str]) -> None:
    up = upstream[0]
    url0 = cluster[0].url
    key = _admin(url0, "POST", "/admin/keys", {"name": "crash"})["key"]
    victim = cluster[1]
    answered: dict[str, httpx.Response] = {}
    up.delay = 0.005

    async def run() -> None:
        counter = iter(range(10**6))
        stop_at = time.monotonic() + 4.0
        async with httpx.AsyncClient(timeout=10) as c:
            async def client() -> None:
                while time.monotonic() < stop_at:
                    n = next(counter)
                    rid = f"k{n}"
                    try:
                        r = await _chat(c, cluster[n % 3].url, key, rid)
                    except httpx.HTTPError:
                        continue
                    if r.status_code == 200:
                        answered[rid] = r

            async def killer() -> None:
                # Kill mid-traffic, once the victim has answered enough to matter (not after
                # a guessed time: on a slow machine it might have answered nothing yet).
                while (sum(int(rid[1:]) % 3 == 1 for rid in answered) < 50
                       and time.monotonic() < stop_at - 1.0):
                    await asyncio.sleep(0.005)
                victim.proc.send_signal(signal.SIGKILL)

            await asyncio.gather(killer(), *(client() for _ in range(24)))

    try:
        asyncio.run(run())
    finally:
        up.delay = 0.0
    assert victim.proc.wait(5) == -signal.SIGKILL
    victim_answers = [rid for rid in answered if int(rid[1:]) % 3 == 1]
    assert victim_answers, "the killed replica answered nothing before it died"
    # A new process on the same state folder replays the dead one's journal.
    cluster[1] = Replica(Path(victim.log).parent / "gatewise.yaml", Path(victim.log).parent, 9)
    cluster[1].wait_ready()
    httpx.post(f"{cluster[1].url}/v1/chat/completions", timeout=30,
               headers={"authorization": f"Bearer {key}"},
               json={"model": "gpt", "messages": [{"role": "user", "content": "warm"}]})

    def recorded() -> set[str]:
        rows = _admin(url0, "GET", "/admin/usage/records?limit=10000")["data"]
        return {r["request_id"] for r in rows}

    # The restarted replica replays the journal; the others flush theirs every 0.2 s.
    wait_until(lambda: set(answered) <= recorded(), timeout_s=10.0,
               what="every answered request reaching the ledger")
    records = _admin(url0, "GET", "/admin/usage/records?limit=10000")["data"]
    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_id.setdefault(r["request_id"], []).append(r)
    assert all(len(v) == 1 for v in by_id.values()), "a request was recorded twice"
    for rid in answered:
        assert rid in by_id, f"answered request {rid} is missing from the ledger"
        rec = by_id[rid][0]
        assert (rec["prompt_tokens"], rec["completion_tokens"]) == up.billed[rid]
        assert rec["outcome"] == "success"


def test_a_key_revoked_on_one_replica_is_refused_by_the_others(cluster: list[Replica]) -> None:
    made = _admin(cluster[0].url, "POST", "/admin/keys", {"name": "short-lived"})
    key = made["key"]

    async def call(url: str) -> int:
        async with httpx.AsyncClient(timeout=30) as c:
            return (await _chat(c, url, key, f"rv{uuid.uuid4().hex[:6]}")).status_code

    assert [asyncio.run(call(r.url)) for r in cluster] == [200, 200, 200]
    _admin(cluster[0].url, "POST", f"/admin/keys/{made['id']}/revoke")
    assert [asyncio.run(call(r.url)) for r in cluster] == [401, 401, 401]
