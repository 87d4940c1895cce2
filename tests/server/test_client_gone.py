"""A client that leaves cancels its upstream call, through the real server: non-streaming calls,
embeddings, and streams whose first chunk has not come yet. The upstream sees its request
closed before the answer, the ledger records `cancelled` with nothing billed, and no budget
reservation is left behind.

The fake upstream's `hold` models answer (a stream: send their first chunk) only after
`HOLD_SECONDS`, unless the connection is closed first, and note which happened. The clients
here are raw sockets that send a request and close the connection after a set time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.faults import HOLD_SECONDS
from tests.fakes.gateway import GatewayServer
from tests.fakes.openai_fake import make_app
from tests.fakes.server import FakeServer
from tests.waiting import eventually

MASTER = "sk-gone-master"
ADMIN = {"authorization": f"Bearer {MASTER}"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeServer]:
    with FakeServer(make_app) as srv:  # its own, so its notes are this module's alone
        yield srv


@pytest.fixture(scope="module")
def gateway(upstream: FakeServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[GatewayServer]:
    dep = {"api_base": upstream.url + "/v1", "api_key": "sk-upstream",
           "prices": {"input": 1.0, "output": 2.0}}
    config = {"models": {"held": [{"model": "openai/gpt-hold", **dep}],
                         "held-embed": [{"model": "openai/text-embedding-hold", **dep}]},
              "server": {"master_key": MASTER, "warmup": False},
              "storage": {"state_dir": str(tmp_path_factory.mktemp("gone"))}}
    with GatewayServer(config) as srv:
        yield srv


@pytest.fixture
def key(gateway: GatewayServer, upstream: FakeServer) -> dict[str, str]:
    """A fresh key with a USD and a token budget of its own (so `spent` is this test's)."""
    upstream.notes.clear()
    upstream.requests.clear()
    r = httpx.post(f"{gateway.url}/admin/keys", headers=ADMIN, json={"name": "gone"})
    assert r.status_code == 201, r.text
    k = r.json()
    r = httpx.post(f"{gateway.url}/admin/budgets", headers=ADMIN, json={
        "scope": "key", "subject": k["id"], "period": "day", "limit_usd": 100.0,
        "limit_tokens": 10_000_000})
    assert r.status_code == 201, r.text
    return {"id": k["id"], "secret": k["key"], "budget": r.json()["id"]}


async def _leave_once_upstream_has(upstream: FakeServer, n: int, port: int, path: str,
                                   payload: dict[str, Any], secret: str) -> float:
    """Sends one request, reads nothing, and closes the connection once the upstream has
    received `n` requests (so the upstream is busy with them); returns when it left."""
    body = json.dumps(payload).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                 f"authorization: Bearer {secret}\r\ncontent-type: application/json\r\n"
                 f"content-length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    deadline = time.monotonic() + 10
    while len(upstream.requests) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert len(upstream.requests) >= n
    assert not reader.at_eof()  # the gateway neither answered nor hung up on its own
    writer.close()
    await writer.wait_closed()
    return time.monotonic()


async def _wait_for_notes(upstream: FakeServer, n: int) -> float:
    """Until the fake noted `n` held requests ended; returns when (bounded by the hold)."""
    await eventually(
        lambda: upstream.notes.count("hold-abandoned") + upstream.notes.count("hold-answered") >= n,
        HOLD_SECONDS + 2, what=f"{n} held requests ended upstream")
    return time.monotonic()


def _records(gateway: GatewayServer, key_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{gateway.url}/admin/usage/records?key={key_id}", headers=ADMIN)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def _spent(gateway: GatewayServer, budget_id: str) -> dict[str, float]:
    """The budget's counters (reservations included), once they settle (bounded)."""
    spent: dict[str, float] = {}
    for _ in range(100):
        async with httpx.AsyncClient() as c:
            rows = (await c.get(f"{gateway.url}/admin/budgets", headers=ADMIN)).json()["data"]
        spent = next(b["spent"] for b in rows if b["id"] == budget_id)
        if all(abs(v) < 1e-9 for v in spent.values()):  # float residue of reserve - release
            break
        await asyncio.sleep(0.02)
    return spent


def _assert_all_cancelled(gateway: GatewayServer, key_id: str, n: int) -> None:
    recs = _records(gateway, key_id)
    assert len(recs) == n
    assert {r["outcome"] for r in recs} == {"cancelled"}
    assert sum(r["completion_tokens"] for r in recs) == 0
    assert sum(r["cost_usd"] for r in recs) == 0.0


async def test_fifty_clients_that_leave_cancel_their_upstream_calls_and_pay_nothing(
        gateway: GatewayServer, upstream: FakeServer, key: dict[str, str]) -> None:
    n = 50
    payload = {"model": "held", "max_tokens": 50,
               "messages": [{"role": "user", "content": "will you wait for me?"}]}
    left = await asyncio.gather(*(
        _leave_once_upstream_has(upstream, n, gateway.port, "/v1/chat/completions", payload,
                                 key["secret"])
        for _ in range(n)))
    noticed = await _wait_for_notes(upstream, n)
    assert upstream.notes.count("hold-abandoned") == n, upstream.notes
    # Every upstream request was closed long before the upstream would have answered.
    assert noticed - max(left) < 1.0 < HOLD_SECONDS
    _assert_all_cancelled(gateway, key["id"], n)
    assert await _spent(gateway, key["budget"]) == {"usd": pytest.approx(0, abs=1e-9),
                                                     "tokens": 0.0}


async def test_a_stream_whose_client_leaves_before_the_first_chunk_is_cancelled_upstream(
        gateway: GatewayServer, upstream: FakeServer, key: dict[str, str]) -> None:
    # The fake has sent its headers and holds the first chunk: nothing has reached the client,
    # and the gateway must not wait for that chunk to notice the client left.
    n = 10
    payload = {"model": "held", "stream": True, "stream_options": {"include_usage": True},
               "messages": [{"role": "user", "content": "stream to nobody"}]}
    left = await asyncio.gather(*(
        _leave_once_upstream_has(upstream, n, gateway.port, "/v1/chat/completions", payload,
                                 key["secret"])
        for _ in range(n)))
    noticed = await _wait_for_notes(upstream, n)
    assert upstream.notes.count("hold-abandoned") == n, upstream.notes
    assert noticed - max(left) < 1.0
    _assert_all_cancelled(gateway, key["id"], n)
    assert await _spent(gateway, key["budget"]) == {"usd": pytest.approx(0, abs=1e-9),
                                                     "tokens": 0.0}


async def test_an_embeddings_client_that_leaves_cancels_the_upstream_call(
        gateway: GatewayServer, upstream: FakeServer, key: dict[str, str]) -> None:
    payload = {"model": "held-embed", "input": ["one", "two"]}
    left = await _leave_once_upstream_has(upstream, 1, gateway.port, "/v1/embeddings", payload,
                                          key["secret"])
    noticed = await _wait_for_notes(upstream, 1)
    assert upstream.notes == ["hold-abandoned"]
    assert noticed - left < 1.0
    _assert_all_cancelled(gateway, key["id"], 1)
    assert await _spent(gateway, key["budget"]) == {"usd": pytest.approx(0, abs=1e-9),
                                                     "tokens": 0.0}


def test_a_client_that_waits_gets_its_answer_and_pays_for_it(
        gateway: GatewayServer, upstream: FakeServer, key: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The same held call, with a client that stays: the watcher must not cut it.
    monkeypatch.setattr("tests.fakes.faults.HOLD_SECONDS", 0.3)
    r = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10,
                   headers={"authorization": f"Bearer {key['secret']}"},
                   json={"model": "held", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    assert upstream.notes == ["hold-answered"]
    (rec,) = _records(gateway, key["id"])
    assert rec["outcome"] == "success" and rec["completion_tokens"] > 0 and rec["cost_usd"] > 0
