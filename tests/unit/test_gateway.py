"""The library API on the shipped in-process fake provider: no network, no model."""

from __future__ import annotations

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import InvalidRequestError, ModelNotFoundRequestError, RateLimitedError
from gatewise.pipeline.core import Call, Handler


def _gateway(**kw: object) -> Gateway:
    cfg, w = parse_config({"models": {"echo": [{"model": "fake/echo"}],
                                      "tools": [{"model": "fake/tools"}],
                                      "limited": [{"model": "fake/fail-429"}]},
                           "default_model": "echo",
                           "router": {"retry": {"max_retries": 0}}})
    return Gateway(resolve_config(cfg, None, {}, w), **kw)  # type: ignore[arg-type]


async def test_chat_returns_content_usage_timings_and_deployment() -> None:
    async with _gateway() as gw:
        r = await gw.chat("hello world")
    assert r.content == "Hello! You said: hello world"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (2, 5)
    assert r.deployment == "echo:fake/echo"
    assert r.latency_s is not None and r.ttft_s is not None and 0 < r.ttft_s <= r.latency_s


async def test_stream_yields_chunks_and_fills_info_at_the_end() -> None:
    async with _gateway() as gw:
        s = gw.stream("one two")
        chunks = [c async for c in s]
    assert s.text == "Hello! You said: one two"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.usage is None for c in chunks)  # not asked for: hidden from the caller
    assert s.info is not None and s.info.usage is not None and s.info.usage.completion_tokens == 5
    assert s.info.ttft_s is not None and s.info.latency_s is not None


async def test_stream_with_include_usage_ends_with_the_usage_chunk() -> None:
    async with _gateway() as gw:
        chunks = [c async for c in gw.stream("x", stream_options={"include_usage": True})]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


async def test_tool_calls_surface_on_the_result() -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}}}}]
    async with _gateway() as gw:
        r = await gw.chat("find", model="tools", tools=tools)
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls[0].function.name == "lookup"
    assert r.tool_calls[0].function.arguments == '{"q": "sample"}'


async def test_embed_returns_vectors_and_usage() -> None:
    async with _gateway() as gw:
        r = await gw.embed(["a b", "c"], dimensions=4)
    assert len(r.vectors) == 2 and len(r.vectors[0]) == 4
    assert r.info.usage is not None and r.info.usage.prompt_tokens == 3


def test_chat_sync_works_outside_an_event_loop() -> None:
    gw = _gateway()
    try:
        assert gw.chat_sync("sync").content == "Hello! You said: sync"
        assert gw.chat_sync("again").content == "Hello! You said: again"
    finally:
        gw.close()


async def test_chat_sync_inside_an_event_loop_says_to_await() -> None:
    gw = _gateway()
    with pytest.raises(RuntimeError, match="await"):
        gw.chat_sync("x")
    await gw.aclose()


async def test_unknown_model_is_model_not_found() -> None:
    async with _gateway() as gw:
        with pytest.raises(ModelNotFoundRequestError):
            await gw.chat("x", model="missing")


async def test_invalid_parameters_are_rejected_before_any_call() -> None:
    seen: list[str] = []

    class Spy:
        async def __call__(self, call: Call, next: Handler) -> object:
            seen.append(call.request.model)
            return await next(call)

    async with _gateway(middlewares=[Spy()]) as gw:
        with pytest.raises(InvalidRequestError) as info:
            await gw.chat("x", temperature=5)
        assert info.value.param == "temperature"
    assert seen == []


async def test_provider_errors_propagate_and_are_counted() -> None:
    async with _gateway() as gw:
        with pytest.raises(RateLimitedError) as info:
            await gw.chat("x", model="limited")
        assert info.value.retry_after == 1.0
        text = gw.metrics.render()
    assert 'gatewise_errors_total{endpoint="chat",model="limited",error_type="RateLimitedError"} 1' \
        in text
    assert 'status="429"' in text


async def test_middlewares_run_in_order_around_the_provider_call() -> None:
    order: list[str] = []

    class Mark:
        def __init__(self, name: str) -> None:
            self.name = name

        async def __call__(self, call: Call, next: Handler) -> object:
            order.append(f"{self.name}>")
            out = await next(call)
            order.append(f"<{self.name}")
            return out

    async with _gateway(middlewares=[Mark("a"), Mark("b")]) as gw:
        await gw.chat("x")
    assert order == ["a>", "b>", "<b", "<a"]


async def test_metrics_count_tokens_and_latency() -> None:
    async with _gateway() as gw:
        await gw.chat("one two three")
        text = gw.metrics.render()
    assert 'gatewise_tokens_total{direction="input",model="echo",deployment="echo:fake/echo"} 3' in text
    assert 'gatewise_request_duration_seconds_count{endpoint="chat",model="echo",' \
           'deployment="echo:fake/echo"} 1' in text
