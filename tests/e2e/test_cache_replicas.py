"""Two `gatewise serve` processes on one Redis, each with a near cache (`cache.near_ttl_s`) in
front of the shared entries: a hit on a replica that read the entry lately never leaves the
process, yet every invalidation path (by key, tag, alias pattern and prefix through the admin
API of either replica, and `gatewise cache invalidate` from the CLI) stops both replicas serving
the entry at once, through Redis pub/sub, and stays within the caller's team.

The near cache's TTL is set far longer (60 s) than the time allowed for an invalidation to land
(`_BOUND_S`), so only the broadcast can explain a replica dropping its copy (Redis: skips without
it, fails in CI)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.test_governance_replicas import Replica
from tests.fakes.server import FakeServer
from tests.fakes.services import REDIS_URL, drop_redis_prefix, require_redis

MASTER = "sk-master-e2e-near-cache"
_BOUND_S = 2.0  # how soon an invalidation must reach the other replica


@dataclass
class Cluster:
    a: Replica
    b: Replica
    config: Path
    prefix: str
    keys: dict[str, str]


@pytest.fixture
def cluster(tmp_path: Path, openai_fake: FakeServer) -> Iterator[Cluster]:
    require_redis()
    prefix = f"gw-e2e-near-{uuid.uuid4().hex[:10]}:"
    config = tmp_path / "gatewise.yaml"
    base = openai_fake.url + "/v1"
    config.write_text(yaml.safe_dump({
        "models": {alias: [{"model": "openai/gpt-4o-mini", "api_base": base, "api_key": "sk-up"}]
                   for alias in ("gpt", "mini")},
        "server": {"master_key": MASTER, "warmup": False},
        "storage": {"redis_url": REDIS_URL, "redis_prefix": prefix,
                    "state_dir": str(tmp_path / "state")},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
        "cache": {"enabled": True, "near_ttl_s": 60},
    }))
    procs = [Replica(config, tmp_path, i) for i in range(2)]
    try:
        for p in procs:
            p.wait_ready()
        keys = {}
        for team in ("red", "blue"):
            assert _call(procs[0], "POST", "/admin/teams", body={"id": team}).status_code == 201
            r = _call(procs[0], "POST", "/admin/keys", body={"name": team, "team": team})
            assert r.status_code == 201, r.text
            keys[team] = r.json()["key"]
        yield Cluster(procs[0], procs[1], config, prefix, keys)
    finally:
        for p in procs:
            p.stop()
        asyncio.run(drop_redis_prefix(REDIS_URL, prefix))


def _call(r: Replica, method: str, path: str, key: str = MASTER, body: Any = None,
          headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.request(method, r.url + path, json=body, timeout=30,
                         headers={"authorization": f"Bearer {key}", **(headers or {})})


def _ask(r: Replica, key: str, text: str, model: str = "gpt", tag: str | None = None,
         only_cached: bool = False) -> httpx.Response:
    headers = {"x-gatewise-cache-tags": tag} if tag else {}
    if only_cached:
        headers["x-gatewise-cache"] = "only-if-cached"
    return _call(r, "POST", "/v1/chat/completions", key, headers=headers, body={
        "model": model, "temperature": 0, "messages": [{"role": "user", "content": text}]})


def _state(r: Replica, key: str, text: str, model: str = "gpt") -> str:
    """hit | miss, storing nothing (only-if-cached)."""
    resp = _ask(r, key, text, model, only_cached=True)
    if resp.status_code == 504:
        return "miss"
    assert resp.status_code == 200, resp.text
    return resp.headers["x-gatewise-cache"]


def _gone_within(r: Replica, key: str, text: str, model: str = "gpt") -> float:
    """Seconds until `r` stops serving the entry; fails past `_BOUND_S`."""
    start = time.monotonic()
    while _state(r, key, text, model) == "hit":
        assert time.monotonic() - start < _BOUND_S, f"{r.url} still serves {text!r}"
        time.sleep(0.02)
    return time.monotonic() - start


def _cached_everywhere(c: Cluster, key: str, text: str, model: str = "gpt",
                       tag: str | None = None) -> str:
    """Asked on A (stored, kept near by A), then a hit on B (kept near by B); the entry key."""
    first = _ask(c.a, key, text, model, tag)
    assert first.status_code == 200 and first.headers["x-gatewise-cache"] == "miss", first.text
    assert _state(c.b, key, text, model) == "hit"
    return first.headers["x-gatewise-cache-key"]


def test_a_near_hit_never_reaches_redis(cluster: Cluster) -> None:
    c = cluster
    _cached_everywhere(c, c.keys["red"], "near and far")
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    try:  # the entry goes from Redis behind gatewise's back: both replicas still have it
        found = list(r.scan_iter(f"{c.prefix}kv:cache:v1:*"))
        assert found and r.delete(*found) == len(found)
    finally:
        r.close()
    assert _state(c.a, c.keys["red"], "near and far") == "hit"
    assert _state(c.b, c.keys["red"], "near and far") == "hit"


def test_every_admin_invalidation_reaches_the_other_replica_within_the_team(
        cluster: Cluster) -> None:
    c = cluster
    red, blue = c.keys["red"], c.keys["blue"]
    # By key, through A: B drops red's entry; blue's entry of the same text stays.
    key = _cached_everywhere(c, red, "by key")
    _cached_everywhere(c, blue, "by key")
    assert _call(c.a, "DELETE", f"/admin/cache/keys/{key}").json()["deleted"] == 1
    _gone_within(c.b, red, "by key")
    assert _state(c.a, red, "by key") == "miss"
    assert _state(c.b, blue, "by key") == "hit" and _state(c.a, blue, "by key") == "hit"
    # By tag, through B: A drops it.
    _cached_everywhere(c, red, "by tag", tag="faq")
    assert _call(c.b, "DELETE", "/admin/cache/tags/faq").json()["deleted"] == 1
    _gone_within(c.a, red, "by tag")
    assert _state(c.b, red, "by tag") == "miss"
    # By alias pattern, through A: only the matching alias goes, on both.
    _cached_everywhere(c, red, "by alias", model="mini")
    _cached_everywhere(c, red, "by alias", model="gpt")
    assert _call(c.a, "DELETE", "/admin/cache/entries?alias=mi*").json()["deleted"] == 1
    _gone_within(c.b, red, "by alias", model="mini")
    assert _state(c.b, red, "by alias", model="gpt") == "hit"
    # By prefix (red's scope, from an entry key), through B: blue's entries stay.
    key = _cached_everywhere(c, red, "by prefix")
    scope = key[:len("cache:v1:") + 17]
    assert _call(c.b, "DELETE", f"/admin/cache/entries?prefix={scope}").json()["deleted"] >= 1
    _gone_within(c.a, red, "by prefix")
    _gone_within(c.a, red, "by alias", model="gpt")
    assert _state(c.a, blue, "by key") == "hit"


def test_the_cli_invalidates_both_running_replicas(cluster: Cluster) -> None:
    c = cluster
    _cached_everywhere(c, c.keys["red"], "from the cli", tag="cli")
    _cached_everywhere(c, c.keys["blue"], "untouched")
    out = subprocess.run([sys.executable, "-m", "gatewise.cli.main", "cache", "invalidate",
                          "--tag", "cli", "--config", str(c.config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "deleted 1"
    _gone_within(c.a, c.keys["red"], "from the cli")
    _gone_within(c.b, c.keys["red"], "from the cli")
    everything = subprocess.run([sys.executable, "-m", "gatewise.cli.main", "cache", "invalidate",
                                 "--all", "--config", str(c.config)],
                                capture_output=True, text=True, timeout=60)
    assert everything.returncode == 0, everything.stderr
    _gone_within(c.a, c.keys["blue"], "untouched")
    _gone_within(c.b, c.keys["blue"], "untouched")
