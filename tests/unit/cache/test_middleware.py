"""`CacheMiddleware` through the library (in-process fake provider): hits, the ledger's record
of a hit, stream storage, request controls, and what is never stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import CacheMissError, GatewayError

PRICES = {"input": 1.0, "output": 2.0}


def config(fallbacks: bool = True, **cache: Any) -> Any:
    cfg, w = parse_config({
        "models": {"m": [{"model": "fake/echo", "prices": PRICES}],
                   "tools": [{"model": "fake/tools", "prices": PRICES}],
                   "broken": [{"model": "fake/fail-500"}],
                   "rescue": [{"model": "fake/echo"}]},
        "router": {"retry": {"max_retries": 0},
                   "fallbacks": {"broken": ["rescue"]} if fallbacks else {}},
        "storage": {"database": "memory"},
        "cache": {"enabled": True, **cache}})
    return resolve_config(cfg, None, {}, w)


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async with Gateway(config(aliases={"tools": {"cache_tools": False}})) as g:
        yield g


async def test_a_repeat_is_a_hit_that_costs_nothing_and_records_the_saving(gw: Gateway) -> None:
    first = await gw.chat("hello there", model="m", temperature=0)
    again = await gw.chat("hello there", model="m", temperature=0)
    assert again.content == first.content
    assert again.completion.id != first.completion.id
    u = again.completion.usage
    assert u is not None and u.prompt_tokens > 0 and u.cached_tokens == u.prompt_tokens
    assert first.info.cost_usd and again.info.cost_usd == 0.0
    await gw.accounting.ledger.flush()
    records = {r.request_id: r for r in await gw.stores.ledger.query()}
    hit = records[again.info.request_id]
    assert hit.outcome == "cached" and hit.cost_usd == 0.0
    assert hit.extra["saved_usd"] == pytest.approx(first.info.cost_usd)
    assert records[first.info.request_id].outcome == "success"


async def test_streams_hit_and_a_streamed_miss_is_stored(gw: Gateway) -> None:
    text = "".join([c.choices[0].delta.content or "" async for c in
                    gw.stream("stream me", model="m", temperature=0) if c.choices])
    await gw.cache.background.drain()  # type: ignore[union-attr]
    hit = await gw.chat("stream me", model="m", temperature=0, cache={"mode": "only-if-cached"})
    assert hit.content == text
    chunks = [c async for c in gw.stream("stream me", model="m", temperature=0,
                                         stream_options={"include_usage": True})]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    usage = chunks[-1].usage
    assert usage is not None and usage.cached_tokens == usage.prompt_tokens > 0


async def test_request_controls(gw: Gateway) -> None:
    with pytest.raises(CacheMissError) as err:
        await gw.chat("q1", model="m", temperature=0, cache={"mode": "only-if-cached"})
    assert err.value.status == 504
    await gw.chat("q1", model="m", temperature=0, cache={"mode": "no-store"})
    with pytest.raises(CacheMissError):
        await gw.chat("q1", model="m", temperature=0, cache={"mode": "only-if-cached"})
    await gw.chat("q1", model="m", temperature=0, cache={"mode": "no-cache"})
    assert (await gw.chat("q1", model="m", temperature=0,
                          cache={"mode": "only-if-cached"})).info.cost_usd == 0.0


async def test_sampled_tool_calling_failing_and_fallback_answers_are_not_stored(
        gw: Gateway) -> None:
    only = {"mode": "only-if-cached"}
    await gw.chat("warm", model="m", temperature=0.9)
    with pytest.raises(CacheMissError):
        await gw.chat("warm", model="m", temperature=0.9, cache=only)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    await gw.chat("call it", model="tools", temperature=0, tools=tools)
    with pytest.raises(CacheMissError):
        await gw.chat("call it", model="tools", temperature=0, tools=tools, cache=only)
    served = await gw.chat("down", model="broken", temperature=0)  # answered by `rescue`
    assert served.content
    with pytest.raises(CacheMissError):
        await gw.chat("down", model="broken", temperature=0, cache=only)


async def test_errors_are_never_cached() -> None:
    async with Gateway(config(fallbacks=False)) as gw:
        for _ in range(2):
            with pytest.raises(GatewayError) as err:
                await gw.chat("x", model="broken", temperature=0)
            assert not isinstance(err.value, CacheMissError)
        with pytest.raises(CacheMissError):
            await gw.chat("x", model="broken", temperature=0, cache={"mode": "only-if-cached"})
        assert len(gw.cache.cache.store) == 0  # type: ignore[union-attr,arg-type]


async def test_ttl_expiry_and_eviction_in_process() -> None:
    async with Gateway(config(max_entries=2)) as gw:
        for q in ("a", "b", "c"):
            await gw.chat(q, model="m", temperature=0)
        store = gw.cache.cache.store  # type: ignore[union-attr]
        assert len(store) == 2  # type: ignore[arg-type]
        with pytest.raises(CacheMissError):  # `a` was the least recently used
            await gw.chat("a", model="m", temperature=0, cache={"mode": "only-if-cached"})


async def test_no_cache_stage_unless_enabled() -> None:
    cfg, w = parse_config({"models": {"m": [{"model": "fake/echo"}]},
                           "storage": {"database": "memory"}})
    async with Gateway(resolve_config(cfg, None, {}, w)) as gw:
        assert gw.cache is None
