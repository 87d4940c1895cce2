"""The semantic cache through the real server and the official `openai` SDK: a paraphrase is
a `semantic-hit` (with its similarity) for the same team only; two gateways on one Redis
share vectors, so a replica that never saw a question serves its paraphrase, streamed and
not (Redis: skips without it, fails in CI)."""

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
from tests.server.test_cache import MASTER, _ask, _client, _post, _upstream_count

SEMANTIC = {"enabled": True, "semantic": {"enabled": True, "refresh_s": 0}}


def _config(upstream: FakeServer, state: Path, **storage: Any) -> dict[str, Any]:
    base = upstream.url + "/v1"
    return {
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": base,
                            "api_key": "sk-up"}]},
        "server": {"master_key": MASTER},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
        "storage": {"state_dir": str(state), **storage},
        "cache": SEMANTIC,
    }


@pytest.fixture(scope="module")
def server(openai_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[GatewayServer]:
    with GatewayServer(_config(openai_fake, tmp_path_factory.mktemp("semantic"))) as srv:
        yield srv


def test_a_paraphrase_is_a_semantic_hit_for_its_own_team_only(server: GatewayServer,
                                                               openai_fake: FakeServer) -> None:
    for team in ("sem-red", "sem-blue"):
        _post(server.url, "/admin/teams", {"id": team})
    red = _post(server.url, "/admin/keys", {"name": "r1", "team": "sem-red"})["key"]
    red2 = _post(server.url, "/admin/keys", {"name": "r2", "team": "sem-red"})["key"]
    blue = _post(server.url, "/admin/keys", {"name": "b1", "team": "sem-blue"})["key"]
    with _client(server, red) as r, _client(server, red2) as r2, _client(server, blue) as b:
        first = _ask(r, "How do I reset my password?")
        assert first.headers["x-gatewise-cache"] == "miss"
        seen = _upstream_count(openai_fake)
        hit = _ask(r2, "how do I reset my password")
        assert hit.headers["x-gatewise-cache"] == "semantic-hit"
        assert 0.9 <= float(hit.headers["x-gatewise-cache-similarity"]) <= 1.0
        # the key named is the entry served (what invalidation by key takes)
        assert hit.headers["x-gatewise-cache-key"] == first.headers["x-gatewise-cache-key"]
        assert float(hit.headers["x-gatewise-cost-usd"]) == 0.0
        assert hit.parse().choices[0].message.content == \
            first.parse().choices[0].message.content
        assert _upstream_count(openai_fake) == seen
        # another team never receives red's answer, however close the question
        assert _ask(b, "how do I reset my password").headers["x-gatewise-cache"] == "miss"
        # and a near miss in red's own scope is not served it either
        assert _ask(r, "How do I reset my PIN?").headers["x-gatewise-cache"] == "miss"
    stats = httpx.get(f"{server.url}/admin/cache/stats", params={"team": "sem-red"},
                      headers={"authorization": f"Bearer {MASTER}"}, timeout=30).json()
    assert stats["total"]["semantic_hits"] == 1
    assert stats["total"]["hit_rate"] == pytest.approx(1 / 3)


def _stream(c: openai.OpenAI, text: str) -> tuple[str, str]:
    raw = c.chat.completions.with_raw_response.create(
        model="gpt", temperature=0, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": text}])
    chunks = list(raw.parse())
    return raw.headers["x-gatewise-cache"], "".join(
        ch.choices[0].delta.content or "" for ch in chunks if ch.choices)


def test_two_gateways_on_one_redis_share_semantic_hits_streamed_and_not(
        openai_fake: FakeServer, tmp_path: Path) -> None:
    require_redis()  # skips without Redis, fails without it under CI=true
    prefix = f"gw-semantic-{os.getpid()}-{time.time_ns()}:"
    cfg = _config(openai_fake, tmp_path, redis_url=REDIS_URL, redis_prefix=prefix)
    with GatewayServer(cfg) as a, GatewayServer(cfg) as b, _client(a) as ca, _client(b) as cb:
        answer = _ask(ca, "What is the capital of France?").parse().choices[0].message.content
        seen = _upstream_count(openai_fake)
        plain = _ask(cb, "what is the capital of france")
        assert plain.headers["x-gatewise-cache"] == "semantic-hit"
        assert plain.parse().choices[0].message.content == answer
        state, text = _stream(cb, "What's France's capital?")
        assert (state, text) == ("semantic-hit", answer)
        assert _upstream_count(openai_fake) == seen
        # a streamed miss on B is stored as it ends, then serves A's paraphrase as a stream
        state, streamed = _stream(cb, "How long does delivery take?")
        assert state == "miss"
        deadline = time.monotonic() + 5
        while True:  # the stream's entry is written as it ends
            try:
                _ask(cb, "How long does delivery take?",
                     headers={"x-gatewise-cache": "only-if-cached"})
                break
            except openai.APIStatusError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert _stream(ca, "how long does delivery take??") == ("semantic-hit", streamed)
        # the near miss is not served on either replica
        assert _ask(ca, "What is the capital of Spain?").headers["x-gatewise-cache"] == "miss"
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(r.scan_iter(prefix + "*"))
        assert any(b":sem:" in k for k in keys)  # the vectors live in Redis
        r.delete(*keys) if keys else None
    finally:
        r.close()
