"""Per-key RPM through the server: OpenAI's `x-ratelimit-*` headers on every answer, and a 429
with `retry-after` (which the official SDK reads) once the window is full. A budget that runs
out answers 402 in OpenAI's error shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.gateway import GatewayServer

MASTER = "sk-limits-master"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GatewayServer]:
    cfg = {"models": {"m": [{"model": "fake/echo", "prices": {"input": 1000.0, "output": 1000.0}}]},
           "server": {"master_key": MASTER, "warmup": False},
           "storage": {"state_dir": str(tmp_path)}}
    with GatewayServer(cfg) as srv:
        yield srv


def _key(srv: GatewayServer, **body: object) -> dict[str, str]:
    r = httpx.post(f"{srv.url}/admin/keys", headers={"authorization": f"Bearer {MASTER}"},
                   json={"name": "k", **body})
    assert r.status_code == 201, r.text
    return {"authorization": f"Bearer {r.json()['key']}", "id": r.json()["id"]}


def _chat(srv: GatewayServer, headers: dict[str, str], text: str = "hi") -> httpx.Response:
    return httpx.post(f"{srv.url}/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": "m", "messages": [{"role": "user", "content": text}],
                            "max_tokens": 10})


def test_rpm_headers_then_429_with_retry_after(server: GatewayServer) -> None:
    h = _key(server, rpm=2)
    auth = {"authorization": h["authorization"]}
    first = _chat(server, auth)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert _chat(server, auth).status_code == 200
    third = _chat(server, auth)
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(third.headers["retry-after"]) <= 61
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert third.headers["x-ratelimit-reset-requests"].endswith("s")


def test_an_exhausted_budget_answers_402(server: GatewayServer) -> None:
    h = _key(server)
    admin = {"authorization": f"Bearer {MASTER}"}
    r = httpx.post(f"{server.url}/admin/budgets", headers=admin, json={
        "scope": "key", "subject": h["id"], "period": "day", "limit_usd": 0.05})
    assert r.status_code == 201, r.text
    auth = {"authorization": h["authorization"]}
    statuses = [_chat(server, auth).status_code for _ in range(30)]
    first_refusal = statuses.index(402)
    assert first_refusal >= 3 and set(statuses[:first_refusal]) == {200}
    assert set(statuses[first_refusal:]) == {402}
    body = _chat(server, auth).json()["error"]
    assert body["code"] == "budget_exceeded" and body["type"] == "insufficient_quota"
    spent = httpx.get(f"{server.url}/admin/budgets", headers=admin).json()["data"][0]["spent"]
    assert spent["usd"] <= 0.05
