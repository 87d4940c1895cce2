"""The quality stage on a real gateway (`gatewise.quality.middleware`): every chat call leaves
a quality row (success, failure, stream), with its scores on `call.scores`, in the metrics and
fed to the router; the gateway's own judge calls leave none; switched off, nothing is
recorded at all."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import GatewayError
from gatewise.gateway import Gateway
from gatewise.pipeline.core import Call, Handler, Identity
from gatewise.storage.quality import QualityFilter, QualityRecord
from gatewise.testing.scripted import ScriptedProvider

ANSWER = "Oslo is the capital of Norway."


class Spy:
    """A per-call middleware keeping every call it sees (they are the chain's own objects)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def __call__(self, call: Call, next: Handler) -> Any:
        self.calls.append(call)
        return await next(call)


def _gateway(quality: dict[str, Any] | None = None, *, script: dict[str, Any] | None = None,
             spy: Spy | None = None, **extra: Any) -> tuple[Gateway, ScriptedProvider]:
    cfg, warnings = parse_config({
        "models": {"chat": [{"model": "fake/chat"}], "broken": [{"model": "fake/broken"}],
                   "judge": [{"model": "fake/judge"}]},
        "default_model": "chat", "storage": {"database": "memory"},
        "router": {"retry": {"max_retries": 0}}, "quality": {"enabled": True, **(quality or {})}, **extra})
    gw = Gateway(resolve_config(cfg, None, {}, warnings),
                 middlewares=[spy] if spy is not None else ())
    provider = ScriptedProvider(script or {"chat": ANSWER, "broken": GatewayError,
                                           "judge": '{"relevance": 5, "completeness": 3}'})
    gw.pool.register("fake", provider)
    return gw, provider


async def _rows(gw: Gateway) -> list[QualityRecord]:
    await gw.quality.flush()
    return await gw.quality.store.query(QualityFilter())


async def test_a_successful_answer_is_scored_and_recorded_with_its_facts() -> None:
    spy = Spy()
    gw, _ = _gateway(spy=spy)
    async with gw:
        r = await gw.chat("Capital of Norway?", model="chat",
                          identity=Identity(tenant="acme", key_id="k1", team="t1", user="u1",
                                            permissions=frozenset({"llm:generate"})))
        [row] = await _rows(gw)
    assert row.request_id == r.info.request_id
    assert (row.alias, row.deployment, row.model) == ("chat", "chat:fake/chat", "fake/chat")
    assert (row.tenant, row.team, row.key_id, row.user) == ("acme", "t1", "k1", "u1")
    assert row.error_type is None and row.scores == {"toxicity": 1.0}
    assert row.latency_s is not None and row.latency_s > 0 and row.ttft_s is not None
    assert row.cost_usd is not None
    assert spy.calls[0].scores == {"toxicity": 1.0}
    assert {"quality_check", "quality_retention"} <= set(gw.maintenance.jobs)


async def test_scores_reach_the_metrics_and_the_router() -> None:
    gw, _ = _gateway()
    async with gw:
        await gw.chat("Give JSON", model="chat", response_format={"type": "json_object"})
        text = gw.metrics.render()
        quality = gw.router.tracker.stats("chat:fake/chat").quality
    assert 'gatewise_quality_score_count{alias="chat",metric="validity"} 1' in text
    assert 'gatewise_quality_score_count{alias="chat",metric="toxicity"} 1' in text
    # Not JSON (validity 0) and clean (toxicity 1): the router hears the mean.
    assert quality == 0.5


async def test_feed_routing_off_leaves_the_router_alone() -> None:
    gw, _ = _gateway({"feed_routing": False})
    async with gw:
        await gw.chat("hi", model="chat")
        assert gw.router.tracker.stats("chat:fake/chat").quality is None


async def test_a_failed_call_is_recorded_with_its_error_type_and_no_scores() -> None:
    gw, _ = _gateway()
    async with gw:
        with pytest.raises(GatewayError):
            await gw.chat("hi", model="broken")
        [row] = await _rows(gw)
    assert row.alias == "broken" and row.error_type is not None and row.scores == {}
    assert row.ttft_s is None


async def test_a_stream_is_scored_once_it_has_ended() -> None:
    gw, _ = _gateway()
    async with gw:
        s = gw.stream("Capital of Norway?", model="chat")
        text = "".join([c.choices[0].delta.content or "" async for c in s if c.choices])
        [row] = await _rows(gw)
    assert text == ANSWER
    assert row.request_id == s.info.request_id if s.info else False
    assert row.scores == {"toxicity": 1.0} and row.error_type is None
    assert row.ttft_s is not None and row.latency_s is not None and row.ttft_s <= row.latency_s


async def test_streamed_tool_calls_and_json_are_checked_for_validity() -> None:
    from gatewise.testing.scripted import tool_call

    weather = {"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    gw, _ = _gateway(script={"chat": [tool_call("weather", {"city": "Oslo"}),
                                      tool_call("weather", {"town": 1}), '{"a": 1}', "{oops"]})
    async with gw:
        for kw in ({"tools": [weather]}, {"tools": [weather]},
                   {"response_format": {"type": "json_object"}},
                   {"response_format": {"type": "json_object"}}):
            async for _ in gw.stream("Weather in Oslo?", model="chat", **kw):
                pass
        rows = await _rows(gw)
    assert [r.scores.get("validity") for r in rows] == [1.0, 0.0, 1.0, 0.0]


async def test_an_abusive_streamed_answer_scores_low_on_toxicity() -> None:
    gw, _ = _gateway(script={"chat": "What a shit question."})
    async with gw:
        async for _ in gw.stream("hi", model="chat"):
            pass
        [row] = await _rows(gw)
    assert row.scores["toxicity"] == 0.5


async def test_a_failing_stream_is_recorded_as_a_failure() -> None:
    gw, _ = _gateway()
    async with gw:
        with pytest.raises(GatewayError):
            async for _ in gw.stream("hi", model="broken"):
                pass
        [row] = await _rows(gw)
    assert row.error_type is not None and row.scores == {}


async def test_the_experiment_arm_is_recorded_under_the_experiments_alias() -> None:
    gw, _ = _gateway(experiments={"exp": {"alias": "chat", "variants": [
        {"name": "control"}, {"name": "treatment", "model": "judge"}]}})
    async with gw:
        await gw.chat("hi", model="chat")
        [row] = await _rows(gw)
    assert (row.alias, row.experiment) == ("chat", "exp")
    assert (row.variant, row.deployment) in {("control", "chat:fake/chat"),
                                             ("treatment", "judge:fake/judge")}


async def test_switched_off_nothing_is_recorded_and_nothing_can_be_rated() -> None:
    spy = Spy()
    gw, _ = _gateway({"enabled": False}, spy=spy)
    async with gw:
        r = await gw.chat("hi", model="chat")
        assert gw.quality.middleware is None and gw.quality.jobs() == []
        assert await _rows(gw) == []
        assert spy.calls[0].scores is None
        with pytest.raises(GatewayError) as err:
            await gw.feedback(r.info.request_id, "up")
    assert err.value.status == 409  # not configured: the message names quality.enabled


async def test_rows_are_written_by_aclose_even_without_a_flush() -> None:
    gw, _ = _gateway()
    store = gw.quality.store
    assert gw.quality.recorder is not None
    gw.quality.recorder.flush_s = 3600.0  # the background flusher stays asleep
    async with gw:
        await gw.chat("hi", model="chat")
        assert gw.quality.recorder.pending == 1
    assert len(await store.query(QualityFilter())) == 1


# -- the judge -----------------------------------------------------------------------------------

async def test_judge_rate_zero_never_asks_the_judge() -> None:
    gw, provider = _gateway({"judge_model": "judge", "judge_sample_rate": 0.0})
    async with gw:
        for _ in range(5):
            await gw.chat("Capital of Norway?", model="chat")
        rows = await _rows(gw)
    assert "judge" not in provider.calls
    assert all("relevance" not in r.scores for r in rows)


async def test_judge_rate_one_asks_once_per_answer_and_merges_its_scores() -> None:
    spy = Spy()
    gw, provider = _gateway({"judge_model": "judge", "judge_sample_rate": 1.0}, spy=spy)
    async with gw:
        for _ in range(3):
            await gw.chat("Capital of Norway?", model="chat")
        rows = await _rows(gw)
        text = gw.metrics.render()
    assert provider.calls.count("judge") == 3
    assert len(rows) == 3  # the judge calls themselves leave no row
    assert all(r.scores == {"toxicity": 1.0, "relevance": 1.0, "completeness": 0.5}
               for r in rows)
    assert 'gatewise_quality_score_count{alias="chat",metric="relevance"} 3' in text
    judged = [c for c in spy.calls if c.internal]
    assert len(judged) == 3
    # The gateway's own work: nobody's key, team or user pays, and no cache keeps it.
    assert all(c.identity.key_id is None and c.identity.team is None and c.identity.user is None
               and c.cache_options == {"mode": "no-store"} and c.scores is None
               for c in judged)
    question = provider.requests[provider.calls.index("judge")]
    assert "Capital of Norway?" in question.messages[-1].content  # type: ignore[union-attr,operator]


async def test_the_default_model_judges_when_no_judge_model_is_set() -> None:
    gw, provider = _gateway({"judge_sample_rate": 1.0},
                            script={"chat": "4", "broken": GatewayError, "judge": "1"})
    async with gw:
        await gw.chat("Capital of Norway?", model="chat")
        [row] = await _rows(gw)
    assert provider.calls == ["chat", "chat"]
    assert row.scores["relevance"] == 0.75 and row.scores["completeness"] == 0.75


async def test_a_failing_or_unreadable_judge_never_fails_the_request() -> None:
    for judge in (GatewayError, "I cannot rate this."):
        gw, provider = _gateway({"judge_model": "judge", "judge_sample_rate": 1.0},
                                script={"chat": ANSWER, "broken": GatewayError, "judge": judge})
        async with gw:
            r = await gw.chat("Capital of Norway?", model="chat")
            [row] = await _rows(gw)
        assert r.content == ANSWER
        assert provider.calls.count("judge") == 1
        assert row.scores == {"toxicity": 1.0}


async def test_a_slow_judge_does_not_delay_the_answer() -> None:
    from gatewise.testing.scripted import Reply

    gw, _ = _gateway({"judge_model": "judge", "judge_sample_rate": 1.0},
                     script={"chat": ANSWER, "broken": GatewayError,
                             "judge": Reply(content='{"relevance": 5, "completeness": 5}',
                                            delay_s=0.3)})
    async with gw:
        r = await gw.chat("Capital of Norway?", model="chat")
        assert r.latency_s is not None and r.latency_s < 0.2
        [row] = await _rows(gw)  # flush waits for the judge
    assert row.scores["relevance"] == 1.0
