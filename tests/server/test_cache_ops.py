"""Operating the exact cache through the real server: tags from a header or metadata,
invalidation through the admin API confined to a team admin's own team, statistics per team
and alias, the entry's key in a response header, and stale answers served by a replica that
never saw the request (two gateways on one Redis: skips without it, fails in CI)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer
from tests.fakes.services import REDIS_URL, require_redis

MASTER = "sk-gatewise-test-cache-ops-master"


def _config(upstream: FakeServer, state: Path, **extra: Any) -> dict[str, Any]:
    base = upstream.url + "/v1"
    return {
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": base, "api_key": "sk-up"}],
                   "mini": [{"model": "openai/gpt-4o-mini", "api_base": base,
                             "api_key": "sk-up"}]},
        "server": {"master_key": MASTER},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
        "storage": {"state_dir": str(state)},
        "cache": {"enabled": True},
        **extra,
    }


def _admin(srv: GatewayServer, method: str, path: str, key: str = MASTER,
           body: Any = None) -> httpx.Response:
    return httpx.request(method, srv.url + path, json=body, timeout=30,
                         headers={"authorization": f"Bearer {key}"})


@pytest.fixture(scope="module")
def server(openai_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[GatewayServer]:
    with GatewayServer(_config(openai_fake, tmp_path_factory.mktemp("cache-ops"))) as srv:
        yield srv


@pytest.fixture(scope="module")
def keys(server: GatewayServer) -> dict[str, str]:
    out = {}
    for team in ("red", "blue"):
        assert _admin(server, "POST", "/admin/teams", body={"id": team}).status_code == 201
        for role in ("member", "team_admin", "viewer"):
            r = _admin(server, "POST", "/admin/keys",
                       body={"name": f"{team}-{role}", "team": team, "role": role})
            assert r.status_code == 201, r.text
            out[f"{team}_{role}"] = r.json()["key"]
    return out


def _ask(srv: GatewayServer, key: str, text: str, model: str = "gpt",
         headers: dict[str, str] | None = None, **kw: Any) -> Any:
    with openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0) as c:
        return c.chat.completions.with_raw_response.create(
            model=model, temperature=0, messages=[{"role": "user", "content": text}],
            extra_headers=headers or {}, **kw)


def _state(srv: GatewayServer, key: str, text: str, model: str = "gpt") -> str:
    """hit | miss, without storing anything (only-if-cached)."""
    r = httpx.post(srv.url + "/v1/chat/completions", timeout=30,
                   headers={"authorization": f"Bearer {key}",
                            "x-gatewise-cache": "only-if-cached"},
                   json={"model": model, "temperature": 0,
                         "messages": [{"role": "user", "content": text}]})
    if r.status_code == 504:
        assert r.json()["error"]["code"] == "cache_miss"
        return "miss"
    assert r.status_code == 200, r.text
    return r.headers["x-gatewise-cache"]


def test_a_team_admin_invalidates_a_tag_in_its_own_team_only(
        server: GatewayServer, keys: dict[str, str]) -> None:
    tagged = {"x-gatewise-cache-tags": "faq, pricing"}
    first = _ask(server, keys["red_member"], "What are your prices?", headers=tagged)
    assert first.headers["x-gatewise-cache"] == "miss"
    assert first.headers["x-gatewise-cache-key"].startswith("cache:v1:")
    _ask(server, keys["red_member"], "Opening hours?", metadata={"cache_tags": "faq"})
    _ask(server, keys["blue_member"], "What are your prices?", headers=tagged)
    r = _admin(server, "DELETE", "/admin/cache/tags/faq", keys["red_team_admin"])
    assert r.status_code == 200, r.text
    assert r.json() == {"object": "cache.invalidation", "deleted": 2}
    assert _state(server, keys["red_member"], "What are your prices?") == "miss"
    assert _state(server, keys["red_member"], "Opening hours?") == "miss"
    assert _state(server, keys["blue_member"], "What are your prices?") == "hit"
    refused = _admin(server, "DELETE", "/admin/cache/tags/faq?team=blue",
                     keys["red_team_admin"])
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error"
    for who in ("red_member", "red_viewer"):
        assert _admin(server, "DELETE", "/admin/cache/tags/faq", keys[who]).status_code == 403
    assert _admin(server, "DELETE", "/admin/cache/tags/faq", MASTER).json()["deleted"] == 1
    assert _state(server, keys["blue_member"], "What are your prices?") == "miss"


def test_invalidation_by_key_needs_the_keys_team(server: GatewayServer,
                                                 keys: dict[str, str]) -> None:
    blue = _ask(server, keys["blue_member"], "Where is my parcel?")
    key = blue.headers["x-gatewise-cache-key"]
    r = _admin(server, "DELETE", f"/admin/cache/keys/{key}", keys["red_team_admin"])
    assert r.status_code == 403
    assert _state(server, keys["blue_member"], "Where is my parcel?") == "hit"
    r = _admin(server, "DELETE", f"/admin/cache/keys/{key}", keys["blue_team_admin"])
    assert r.json()["deleted"] == 1
    assert _state(server, keys["blue_member"], "Where is my parcel?") == "miss"
    assert _admin(server, "DELETE", "/admin/cache/keys/not-a-key").status_code == 400


def test_invalidation_by_alias_pattern_and_by_prefix(server: GatewayServer,
                                                     keys: dict[str, str]) -> None:
    for model in ("gpt", "mini"):
        _ask(server, keys["red_member"], "by alias", model)
    r = _admin(server, "DELETE", "/admin/cache/entries?alias=mi*", keys["red_team_admin"])
    assert r.json()["deleted"] == 1
    assert _state(server, keys["red_member"], "by alias", "mini") == "miss"
    assert _state(server, keys["red_member"], "by alias", "gpt") == "hit"
    key = _ask(server, keys["red_member"], "by prefix").headers["x-gatewise-cache-key"]
    team_prefix = key[:len("cache:v1:") + 17]
    assert _admin(server, "DELETE", f"/admin/cache/entries?prefix={team_prefix}",
                  keys["blue_team_admin"]).status_code == 403
    r = _admin(server, "DELETE", f"/admin/cache/entries?prefix={team_prefix}",
               keys["red_team_admin"])
    assert r.json()["deleted"] >= 2
    assert _state(server, keys["red_member"], "by prefix") == "miss"
    assert _admin(server, "DELETE", "/admin/cache/entries?prefix=x").status_code == 400


def test_a_bad_tag_is_a_400_that_stores_nothing(server: GatewayServer,
                                                keys: dict[str, str]) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        _ask(server, keys["red_member"], "bad tag", headers={"x-gatewise-cache-tags": "a b"})
    assert err.value.body["param"] == "x-gatewise-cache-tags"  # type: ignore[index]
    assert _state(server, keys["red_member"], "bad tag") == "miss"


def test_statistics_per_team_and_alias(server: GatewayServer, keys: dict[str, str]) -> None:
    for _ in range(3):
        _ask(server, keys["red_member"], "counted")
    _ask(server, keys["blue_member"], "counted")
    everyone = _admin(server, "GET", "/admin/cache/stats").json()
    assert everyone["enabled"] is True
    rows = {(r["team"], r["alias"]): r for r in everyone["data"]}
    red = rows[("red", "gpt")]
    assert red["hits"] >= 2 and red["misses"] >= 1 and 0 < red["hit_rate"] < 1
    assert red["tokens_saved"] > 0
    assert ("blue", "gpt") in rows
    total = everyone["total"]
    assert total["hits"] == sum(r["hits"] for r in everyone["data"])
    own = _admin(server, "GET", "/admin/cache/stats", keys["red_viewer"]).json()
    assert {r["team"] for r in own["data"]} == {"red"}
    assert _admin(server, "GET", "/admin/cache/stats?team=blue",
                  keys["red_team_admin"]).status_code == 403
    metrics = httpx.get(server.url + "/metrics", timeout=30,
                        headers={"authorization": f"Bearer {MASTER}"}).text
    assert 'gatewise_cache_requests_total{model="gpt",result="hit"}' in metrics


def test_a_replica_that_never_saw_the_request_serves_the_last_good_answer(
        openai_fake: FakeServer, tmp_path: Path) -> None:
    require_redis()  # skips without Redis, fails without it under CI=true
    prefix = f"gw-stale-{os.getpid()}-{time.time_ns()}:"
    base = openai_fake.url + "/v1"
    storage = {"state_dir": str(tmp_path), "redis_url": REDIS_URL, "redis_prefix": prefix}
    router = {"retry": {"max_retries": 0}, "breaker": {"enabled": False},
              "stale_on_outage": True}
    healthy = {"models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": base,
                                   "api_key": "sk-up"}]},
               "server": {"master_key": MASTER}, "router": router, "storage": storage}
    down = {**healthy, "models": {"gpt": [{"model": "openai/gpt-fail-500", "api_base": base,
                                           "api_key": "sk-up"}]}}
    question = f"last good answer {prefix}"
    with GatewayServer(healthy) as a, GatewayServer(down) as b:
        good = _ask(a, MASTER, question)
        assert "x-gatewise-stale" not in good.headers
        served = _ask(b, MASTER, question)
        assert served.headers["x-gatewise-stale"] == "true"
        assert served.parse().choices[0].message.content == \
            good.parse().choices[0].message.content
        with pytest.raises(openai.APIStatusError):  # a question nobody answered yet
            _ask(b, MASTER, question + " (new)")
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    try:
        found = list(r.scan_iter(prefix + "*"))
        assert any(b"stale:" in k for k in found)
        r.delete(*found) if found else None
    finally:
        r.close()


@pytest.fixture(params=["redis", "postgres"])
def shared_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Storage for two replicas sharing the cache: Redis, or PostgreSQL (`store: shared`)."""
    tag = f"{os.getpid()}_{time.time_ns()}"
    if request.param == "redis":
        require_redis()  # skips without Redis, fails without it under CI=true
        prefix = f"gw-cache-ops-{tag}:"
        yield {"state_dir": str(tmp_path), "redis_url": REDIS_URL, "redis_prefix": prefix}
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        found = list(r.scan_iter(prefix + "*"))
        if found:
            r.delete(*found)
        r.close()
        return
    from tests.fakes.services import require_pg

    pg_url = require_pg()
    schema = f"gw_cache_ops_{tag}"
    yield {"state_dir": str(tmp_path), "database": "postgres", "postgres_url": pg_url,
           "postgres_schema": schema}
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_replicas_share_invalidation_and_statistics(
        openai_fake: FakeServer, tmp_path: Path, shared_storage: dict[str, Any]) -> None:
    cfg = _config(openai_fake, tmp_path, storage=shared_storage,
                  cache={"enabled": True, "store": "shared", "maintenance_interval_s": 0.1,
                         "near_ttl_s": 0.5})
    question = f"shared operations {time.time_ns()}"
    with GatewayServer(cfg) as a, GatewayServer(cfg) as b:
        first = _ask(a, MASTER, question, headers={"x-gatewise-cache-tags": "ops"})
        assert first.headers["x-gatewise-cache"] == "miss"
        assert _ask(b, MASTER, question).headers["x-gatewise-cache"] == "hit"
        # Invalidated through B, gone for A too: at once from A's near cache, broadcast over
        # Redis pub/sub or PostgreSQL LISTEN/NOTIFY (`test_pg_broadcast.py` bounds the latter).
        r = _admin(b, "DELETE", "/admin/cache/tags/ops")
        assert r.json()["deleted"] == 1
        deadline = time.monotonic() + 0.5 + 1.0
        while _state(a, MASTER, question) == "hit":
            assert time.monotonic() < deadline, "A still serves an invalidated entry"
            time.sleep(0.05)
        assert _state(b, MASTER, question) == "miss"
        # A's counts reach the store on its maintenance job; B reports them.
        time.sleep(0.5)
        rows = {(row["team"], row["alias"]): row
                for row in _admin(b, "GET", "/admin/cache/stats").json()["data"]}
        row = rows[("-", "gpt")]
        assert row["hits"] >= 1 and row["misses"] >= 2
        assert _admin(a, "GET", "/admin/cache/stats").json()["total"]["hits"] == \
            _admin(b, "GET", "/admin/cache/stats").json()["total"]["hits"]


def test_the_document_describes_the_cache_headers_and_routes(server: GatewayServer) -> None:
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert {p["name"] for p in chat["parameters"]} >= {
        "x-gatewise-cache", "x-gatewise-cache-ttl", "x-gatewise-cache-tags"}
    assert {"x-gatewise-cache", "x-gatewise-cache-key"} <= set(
        chat["responses"]["200"]["headers"])
    assert "cache_miss" in chat["responses"]["504"]["description"]
    assert "get" in doc["paths"]["/admin/cache/stats"]
    for path in ("/admin/cache/keys/{cache_key}", "/admin/cache/tags/{tag}",
                 "/admin/cache/entries"):
        assert "delete" in doc["paths"][path], path
