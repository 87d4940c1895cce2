"""Degradation against an alias's own baseline (`gatewise.quality.degradation`), on synthetic
rows and an injected clock; and the retention job."""

from __future__ import annotations

import logging

import pytest

from gatewise.config.schema_ops import QualityConfig
from gatewise.observability.metrics import GatewayMetrics
from gatewise.quality.degradation import DegradationCheck, QualityRetention
from gatewise.storage.quality import FeedbackRecord, QualityFilter, QualityRecord
from gatewise.storage.quality_memory import MemoryQualityStore

NOW = 1_000_000.0
HOUR = 3600.0
CONFIG = QualityConfig(window_s=HOUR, baseline_s=24 * HOUR, min_samples=10,
                       degradation_drop=0.15)


async def _fill(store: MemoryQualityStore, alias: str, start: float, end: float, n: int,
                **scores: float) -> None:
    step = (end - start) / n
    await store.add([QualityRecord(request_id=f"{alias}-{start}-{i}", ts=start + i * step,
                                   alias=alias, scores=dict(scores)) for i in range(n)])


def _check(store: MemoryQualityStore, metrics: GatewayMetrics,
           clock: list[float]) -> DegradationCheck:
    return DegradationCheck(store, CONFIG, metrics, known_aliases={"chat", "code"},
                            clock=lambda: clock[0])


async def test_a_drop_against_the_aliass_own_baseline_is_degraded(
        caplog: pytest.LogCaptureFixture) -> None:
    store, metrics, clock = MemoryQualityStore(), GatewayMetrics(), [NOW]
    await _fill(store, "chat", NOW - 20 * HOUR, NOW - HOUR, 40, validity=0.9)
    await _fill(store, "chat", NOW - HOUR, NOW, 20, validity=0.6)
    with caplog.at_level(logging.WARNING, logger="gatewise.quality"):
        out = await _check(store, metrics, clock).run()
    assert out == {"series": 1, "degraded": ["chat/validity"]}
    key = ("chat", "validity")
    assert metrics.quality_mean.get(key) == pytest.approx(0.6)
    assert metrics.quality_baseline.get(key) == pytest.approx(0.9)
    assert metrics.quality_degraded.get(key) == 1.0
    assert "quality degraded: alias chat, validity" in caplog.text


async def test_each_alias_is_judged_against_its_own_level() -> None:
    store, metrics, clock = MemoryQualityStore(), GatewayMetrics(), [NOW]
    # `code` always scored low and still does: no drop. `chat` dipped by less than the margin.
    await _fill(store, "code", NOW - 10 * HOUR, NOW - HOUR, 20, validity=0.5)
    await _fill(store, "code", NOW - HOUR, NOW, 20, validity=0.5)
    await _fill(store, "chat", NOW - 10 * HOUR, NOW - HOUR, 20, toxicity=1.0)
    await _fill(store, "chat", NOW - HOUR, NOW, 20, toxicity=0.9)
    out = await _check(store, metrics, clock).run()
    assert out == {"series": 2, "degraded": []}
    assert metrics.quality_degraded.get(("code", "validity")) == 0.0
    assert metrics.quality_degraded.get(("chat", "toxicity")) == 0.0


async def test_too_few_samples_on_either_side_is_never_an_alert() -> None:
    store, metrics, clock = MemoryQualityStore(), GatewayMetrics(), [NOW]
    await _fill(store, "chat", NOW - 10 * HOUR, NOW - HOUR, 30, validity=1.0)
    await _fill(store, "chat", NOW - HOUR, NOW, 9, validity=0.0)
    out = await _check(store, metrics, clock).run()
    assert out["degraded"] == []
    assert ("chat", "validity") not in metrics.quality_mean.values
    assert metrics.quality_baseline.get(("chat", "validity")) == 1.0
    assert metrics.quality_degraded.get(("chat", "validity")) == 0.0


async def test_rows_outside_the_baseline_span_and_failed_calls_do_not_count() -> None:
    store, metrics, clock = MemoryQualityStore(), GatewayMetrics(), [NOW]
    await _fill(store, "chat", NOW - 100 * HOUR, NOW - 30 * HOUR, 50, validity=1.0)  # too old
    await _fill(store, "chat", NOW - 10 * HOUR, NOW - HOUR, 20, validity=0.7)
    await _fill(store, "chat", NOW - HOUR, NOW, 20, validity=0.7)
    await store.add([QualityRecord(request_id=f"err{i}", ts=NOW - 10, alias="chat",
                                   error_type="ProviderServerError") for i in range(50)])
    out = await _check(store, metrics, clock).run()
    assert out["degraded"] == []
    assert metrics.quality_baseline.get(("chat", "validity")) == pytest.approx(0.7)


async def test_recovery_clears_the_flag_and_a_series_without_samples_stops_being_exported(
        caplog: pytest.LogCaptureFixture) -> None:
    store, metrics, clock = MemoryQualityStore(), GatewayMetrics(), [NOW]
    await _fill(store, "chat", NOW - 20 * HOUR, NOW - HOUR, 40, validity=0.9)
    await _fill(store, "chat", NOW - HOUR, NOW, 20, validity=0.5)
    check = _check(store, metrics, clock)
    assert (await check.run())["degraded"] == ["chat/validity"]
    # An hour later the new window is healthy again (the bad hour is now baseline).
    await _fill(store, "chat", NOW, NOW + HOUR, 200, validity=0.9)
    clock[0] = NOW + HOUR
    with caplog.at_level(logging.INFO, logger="gatewise.quality"):
        assert (await check.run())["degraded"] == []
    assert metrics.quality_degraded.get(("chat", "validity")) == 0.0
    assert "quality recovered: alias chat" in caplog.text
    # Far in the future nothing is left in either span: the series disappears.
    clock[0] = NOW + 1000 * HOUR
    assert (await check.run())["series"] == 0
    assert ("chat", "validity") not in metrics.quality_degraded.values


async def test_unknown_aliases_are_grouped_under_other() -> None:
    store, metrics, clock = MemoryQualityStore(), GatewayMetrics(), [NOW]
    await _fill(store, "made-up-1", NOW - 10 * HOUR, NOW - HOUR, 10, toxicity=1.0)
    await _fill(store, "made-up-2", NOW - HOUR, NOW, 10, toxicity=1.0)
    await _check(store, metrics, clock).run()
    assert set(metrics.quality_mean.values) == {("other", "toxicity")}


async def test_retention_removes_rows_and_feedback_older_than_the_retention_days() -> None:
    store = MemoryQualityStore()
    day = 86400.0
    await store.add([QualityRecord(request_id=f"r{i}", ts=NOW - i * day, alias="chat")
                     for i in range(10)])
    await store.add_feedback(FeedbackRecord(request_id="r9", ts=NOW - 9 * day, score=1.0))
    job = QualityRetention(store, retention_days=5, clock=lambda: NOW, batch=2)
    assert job.name == "quality_retention" and job.default_interval_s > 0
    assert await job.run() == {"deleted": 4}  # days 6..9 (day 5 is exactly on the line)
    left = [r.request_id for r in await store.query(QualityFilter())]
    assert sorted(left) == [f"r{i}" for i in range(6)]
    assert await store.feedback("r9") == []
    assert await job.run() == {"deleted": 0}
