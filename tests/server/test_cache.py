"""The exact response cache through the real server and the official `openai` SDK: repeats are
hits (header, same content, usage marked cached), streamed and not; two teams never share an
entry; `x-gatewise-cache` controls; errors are never cached; a PII-masked request never stores
raw PII; two gateways on one Redis share a hit (Redis: skips without it, fails in CI)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gatewise.cache import LRUStore
from gatewise.config.loader import parse_config, resolve_config
from gatewise.gateway import Gateway
from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer
from tests.fakes.services import REDIS_URL, require_redis

MASTER = "sk-gatewise-test-cache-master"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


def _config(upstream: FakeServer, state: Path, **extra: Any) -> dict[str, Any]:
    base = upstream.url + "/v1"
    return {
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": base, "api_key": "sk-up"}],
                   "broken": [{"model": "openai/gpt-fail-500", "api_base": base,
                               "api_key": "sk-up"}]},
        "server": {"master_key": MASTER},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
        "storage": {"state_dir": str(state)},
        "cache": {"enabled": True},
        **extra,
    }


@pytest.fixture(scope="module")
def server(openai_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[GatewayServer]:
    with GatewayServer(_config(openai_fake, tmp_path_factory.mktemp("cache"))) as srv:
        yield srv


def _client(srv: GatewayServer, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0)


def _ask(c: openai.OpenAI, text: str, model: str = "gpt", headers: dict[str, str] | None = None,
         **kw: Any) -> Any:
    return c.chat.completions.with_raw_response.create(
        model=model, temperature=0, messages=[{"role": "user", "content": text}],
        extra_headers=headers or {}, **kw)


def _upstream_count(upstream: FakeServer) -> int:
    return len(upstream.requests)


def test_a_repeated_request_is_a_hit(server: GatewayServer, openai_fake: FakeServer) -> None:
    with _client(server) as c:
        first = _ask(c, "What is a cache hit?")
        seen = _upstream_count(openai_fake)
        again = _ask(c, "What is a cache hit?")
    assert first.headers["x-gatewise-cache"] == "miss"
    assert again.headers["x-gatewise-cache"] == "hit"
    assert _upstream_count(openai_fake) == seen  # the upstream was not asked again
    a, b = first.parse(), again.parse()
    assert b.choices[0].message.content == a.choices[0].message.content
    assert b.id != a.id
    assert b.usage is not None and b.usage.prompt_tokens == a.usage.prompt_tokens
    assert b.usage.prompt_tokens_details is not None
    assert b.usage.prompt_tokens_details.cached_tokens == b.usage.prompt_tokens > 0
    assert float(again.headers["x-gatewise-cost-usd"]) == 0.0


def test_streams_are_stored_and_replayed(server: GatewayServer, openai_fake: FakeServer) -> None:
    with _client(server) as c:
        def stream() -> tuple[str, str, Any]:
            raw = c.chat.completions.with_raw_response.create(
                model="gpt", temperature=0, stream=True, stream_options={"include_usage": True},
                messages=[{"role": "user", "content": "Tell me about streams"}])
            chunks = list(raw.parse())
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            return raw.headers["x-gatewise-cache"], text, chunks[-1].usage

        state, text, usage = stream()
        assert state == "miss" and text and not usage.prompt_tokens_details.cached_tokens
        seen = _upstream_count(openai_fake)
        deadline = time.monotonic() + 5
        while True:  # the stream's entry is written as it ends
            state, again, usage = stream()
            if state == "hit" or time.monotonic() > deadline:
                break
        assert state == "hit" and again == text
        assert usage.prompt_tokens_details.cached_tokens == usage.prompt_tokens > 0
        assert (usage.model_extra or {})["cost_usd"] == 0.0
        # and the stored stream answers a non-streaming request too
        plain = _ask(c, "Tell me about streams")
        assert plain.headers["x-gatewise-cache"] == "hit"
        assert plain.parse().choices[0].message.content == text
    assert _upstream_count(openai_fake) == seen


def _post(url: str, path: str, body: Any) -> Any:
    r = httpx.post(f"{url}{path}", json=body, headers={"authorization": f"Bearer {MASTER}"},
                   timeout=30)
    assert r.status_code < 300, r.text
    return r.json()


def test_two_teams_never_share_an_entry(server: GatewayServer) -> None:
    for team in ("cache-red", "cache-blue"):
        _post(server.url, "/admin/teams", {"id": team})
    red = _post(server.url, "/admin/keys", {"name": "r1", "team": "cache-red"})["key"]
    red2 = _post(server.url, "/admin/keys", {"name": "r2", "team": "cache-red"})["key"]
    blue = _post(server.url, "/admin/keys", {"name": "b1", "team": "cache-blue"})["key"]
    question = "Which team am I on?"
    with _client(server, red) as r, _client(server, red2) as r2, _client(server, blue) as b:
        assert _ask(r, question).headers["x-gatewise-cache"] == "miss"
        assert _ask(r2, question).headers["x-gatewise-cache"] == "hit"  # same team
        assert _ask(b, question).headers["x-gatewise-cache"] == "miss"  # another team
        assert _ask(b, question).headers["x-gatewise-cache"] == "hit"
        _ask(r, "only red asked this")
        with pytest.raises(openai.APIStatusError) as err:
            _ask(b, "only red asked this", headers={"x-gatewise-cache": "only-if-cached"})
        assert err.value.status_code == 504


def test_request_controls(server: GatewayServer, openai_fake: FakeServer) -> None:
    with _client(server) as c:
        with pytest.raises(openai.APIStatusError) as err:
            _ask(c, "controls?", headers={"x-gatewise-cache": "only-if-cached"})
        assert err.value.status_code == 504
        body = err.value.body
        assert isinstance(body, dict) and body["code"] == "cache_miss"
        assert _ask(c, "controls?", headers={"x-gatewise-cache": "no-store"}).headers[
            "x-gatewise-cache"] == "miss"
        with pytest.raises(openai.APIStatusError):  # no-store stored nothing
            _ask(c, "controls?", headers={"x-gatewise-cache": "only-if-cached"})
        seen = _upstream_count(openai_fake)
        fresh = _ask(c, "controls?", headers={"x-gatewise-cache": "no-cache"})
        assert fresh.headers["x-gatewise-cache"] == "bypass"
        assert _upstream_count(openai_fake) == seen + 1  # asked upstream, and stored
        assert _ask(c, "controls?", headers={"x-gatewise-cache": "only-if-cached"}).headers[
            "x-gatewise-cache"] == "hit"
        assert _ask(c, "controls?", headers={"x-gatewise-cache": "no-cache"}).headers[
            "x-gatewise-cache"] == "bypass"
        # a sampled request is never cached
        sampled = c.chat.completions.with_raw_response.create(
            model="gpt", temperature=0.8, messages=[{"role": "user", "content": "controls?"}])
        assert sampled.headers["x-gatewise-cache"] == "bypass"
        with pytest.raises(openai.BadRequestError):
            _ask(c, "controls?", headers={"x-gatewise-cache": "whenever"})
        with pytest.raises(openai.BadRequestError):
            _ask(c, "controls?", headers={"x-gatewise-cache-ttl": "-5"})


def test_a_per_request_ttl_expires(server: GatewayServer) -> None:
    with _client(server) as c:
        _ask(c, "short-lived", headers={"x-gatewise-cache-ttl": "0.3"})
        assert _ask(c, "short-lived").headers["x-gatewise-cache"] == "hit"
        time.sleep(0.4)
        assert _ask(c, "short-lived").headers["x-gatewise-cache"] == "miss"


def test_an_error_is_never_cached(server: GatewayServer, openai_fake: FakeServer) -> None:
    with _client(server) as c:
        for _ in range(2):
            seen = _upstream_count(openai_fake)
            with pytest.raises(openai.APIStatusError) as err:
                _ask(c, "fail please", model="broken")
            assert err.value.status_code != 504
            assert _upstream_count(openai_fake) == seen + 1  # asked every time
        with pytest.raises(openai.APIStatusError) as err:
            _ask(c, "fail please", model="broken",
                 headers={"x-gatewise-cache": "only-if-cached"})
        assert err.value.status_code == 504


def test_a_masked_pii_request_never_stores_raw_pii(tmp_path: Path) -> None:
    from tests.fakes.pii_echo_fake import make_app

    with FakeServer(make_app) as upstream:
        cfg, w = parse_config(_config(upstream, tmp_path,
                                      guardrails={"default": {"pii": {}}}))
        gateway = Gateway(resolve_config(cfg, None, {}, w))
        text = f"My e-mail is {EMAIL} and my card is {CARD}."
        with GatewayServer(gateway=gateway) as srv, _client(srv) as c:
            first = _ask(c, text)
            second = _ask(c, text)
            streamed = c.chat.completions.create(
                model="gpt", temperature=0, stream=True,
                messages=[{"role": "user", "content": text}])
            streamed_text = "".join(ch.choices[0].delta.content or "" for ch in streamed
                                    if ch.choices)
            store = gateway.cache.cache.store  # type: ignore[union-attr]
            assert isinstance(store, LRUStore)
            stored = list(store.values())  # read before the gateway closes (and clears) it
        assert first.headers["x-gatewise-cache"] == "miss"
        assert second.headers["x-gatewise-cache"] == "hit"
        for answer in (first.parse().choices[0].message.content or "",
                       second.parse().choices[0].message.content or "", streamed_text):
            assert EMAIL in answer and CARD in answer  # the caller gets its values back
        assert all(EMAIL not in r.body.decode() for r in upstream.requests)
    assert stored
    for value in stored:
        assert EMAIL.encode() not in value and CARD.encode() not in value
        assert b"<EMAIL_1>" in value  # the masked answer, with placeholders


def test_two_gateways_on_one_redis_share_a_hit(openai_fake: FakeServer, tmp_path: Path) -> None:
    require_redis()  # skips without Redis, fails without it under CI=true
    prefix = f"gw-cache-{os.getpid()}-{time.time_ns()}:"
    cfg = _config(openai_fake, tmp_path, storage={
        "state_dir": str(tmp_path), "redis_url": REDIS_URL, "redis_prefix": prefix})
    with GatewayServer(cfg) as a, GatewayServer(cfg) as b, \
            _client(a) as ca, _client(b) as cb:
        question = f"shared across replicas {prefix}"
        assert _ask(ca, question).headers["x-gatewise-cache"] == "miss"
        seen = _upstream_count(openai_fake)
        hit = _ask(cb, question)
        assert hit.headers["x-gatewise-cache"] == "hit"
        assert _upstream_count(openai_fake) == seen
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(r.scan_iter(prefix + "*"))
        assert any(b"cache:v1:" in k for k in keys)
        r.delete(*keys) if keys else None
    finally:
        r.close()
