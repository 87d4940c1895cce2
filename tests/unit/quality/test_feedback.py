"""Feedback in the library (`gw.feedback`, `gw.feedback_sync`) and its contract
(`gatewise.quality.feedback`): one 0..1 scale, own requests only, nothing stored on a refusal,
the latest rating is the request's feedback score, and the router hears it."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import (
    ForbiddenError,
    InvalidRequestError,
    NotConfiguredError,
    NotFoundError,
)
from gatewise.gateway import Gateway
from gatewise.pipeline.core import Identity
from gatewise.quality.feedback import parse_score, sentiment
from gatewise.security.rbac import permissions_for


def _gateway() -> Gateway:
    cfg, warnings = parse_config({"models": {"chat": [{"model": "fake/echo"}]},
                                  "default_model": "chat", "storage": {"database": "memory"},
                                  "quality": {"enabled": True}})
    return Gateway(resolve_config(cfg, None, {}, warnings))


async def test_with_quality_off_feedback_says_how_to_turn_it_on() -> None:
    cfg, warnings = parse_config({"models": {"chat": [{"model": "fake/echo"}]},
                                  "default_model": "chat", "storage": {"database": "memory"}})
    async with Gateway(resolve_config(cfg, None, {}, warnings)) as gw:
        result = await gw.chat("hello")
        with pytest.raises(NotConfiguredError, match=r"quality\.enabled") as err:
            await gw.feedback(result.info.request_id, "up")
        assert err.value.status == 409
        with pytest.raises(InvalidRequestError):  # bad input is still named first
            await gw.feedback(result.info.request_id, 7)


def _key(key_id: str, team: str = "red", role: str = "member") -> Identity:
    return Identity(tenant=team, key_id=key_id, team=team, role=role,
                    permissions=permissions_for(role))


@pytest.mark.parametrize(("given", "expected"), [
    ("up", 1.0), ("down", 0.0), (0, 0.0), (1, 1.0), (0.3, 0.3)])
def test_a_score_is_a_number_from_0_to_1_or_up_or_down(given: Any, expected: float) -> None:
    assert parse_score(given) == expected


@pytest.mark.parametrize("given", [True, False, None, -0.01, 1.01, "UP", "5", float("nan"), [1]])
def test_anything_else_is_refused(given: Any) -> None:
    with pytest.raises(InvalidRequestError) as err:
        parse_score(given)
    assert err.value.param == "score" and err.value.status == 400


def test_sentiment_splits_at_the_middle() -> None:
    assert [sentiment(s) for s in (0.0, 0.49, 0.5, 0.51, 1.0)] == [
        "negative", "negative", "neutral", "positive", "positive"]


async def test_the_library_rates_a_response_and_the_latest_rating_wins() -> None:
    async with _gateway() as gw:
        r = await gw.chat("hello")
        rid = r.info.request_id
        await gw.feedback(rid, "up", "good")
        fb = await gw.feedback(rid, 0.2)
        await gw.quality.flush()
        row = await gw.quality.store.get(rid)
        kept = await gw.quality.store.feedback(rid)
        routed = gw.router.tracker.stats(r.info.deployment or "").quality
    assert fb.score == 0.2 and fb.comment is None
    assert row is not None and row.scores["feedback"] == 0.2
    assert [(f.score, f.comment) for f in kept] == [(1.0, "good"), (0.2, None)]
    assert routed is not None


async def test_only_the_requests_own_key_may_rate_it_and_refusals_store_nothing() -> None:
    alice, bob, eve = _key("alice"), _key("bob"), _key("eve", team="blue")
    async with _gateway() as gw:
        r = await gw.chat("hello", identity=alice)
        rid = r.info.request_id
        for other in (bob, eve):
            with pytest.raises(NotFoundError):
                await gw.feedback(rid, "up", identity=other)
        with pytest.raises(ForbiddenError):
            await gw.feedback(rid, "up", identity=_key("v", role="viewer"))
        with pytest.raises(InvalidRequestError):
            await gw.feedback(rid, "up", "x" * 5000, identity=alice)
        assert await gw.quality.store.feedback(rid) == []
        await gw.feedback(rid, "down", identity=alice)
        admin = await gw.feedback(rid, "up", identity=_key("boss", role="admin"))
        assert admin.key_id == "boss"
        with pytest.raises(NotFoundError):
            await gw.feedback("req_unknown", "up")


def test_feedback_sync_works_outside_an_event_loop() -> None:
    gw = _gateway()
    try:
        r = gw.chat_sync("hello")
        assert gw.feedback_sync(r.info.request_id, "up").score == 1.0
    finally:
        gw.close()
