"""Spend alerts reach a real HTTP receiver in a shape both a generic JSON consumer and a Slack
incoming webhook accept: the alert's fields, plus `text` (Slack requires it), a one-line
summary naming the budget's public subject and amounts, never a key or the webhook URL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from gatewise.config.loader import parse_config, resolve_config
from gatewise.gateway import Gateway
from gatewise.pipeline.core import Identity
from tests.fakes.server import FakeServer


def _receiver(srv: FakeServer) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})  # FakeServer records the request

    app = web.Application()
    app.router.add_post("/services/T0/B0/secret-token", hook)
    return app


@pytest.fixture(scope="module")
def receiver() -> Iterator[FakeServer]:
    with FakeServer(_receiver) as srv:
        yield srv


async def test_a_crossed_budget_posts_fields_and_slack_text(receiver: FakeServer) -> None:
    url = receiver.url + "/services/T0/B0/secret-token"
    cfg, w = parse_config({
        "models": {"m": [{"model": "fake/echo"}]},
        "storage": {"database": "memory"},
        "accounting": {"alert_webhook": url, "budgets": [
            {"scope": "team", "subject": "blue", "period": "month", "limit_tokens": 10,
             "hard": False}]}})
    since = len(receiver.requests)
    async with Gateway(resolve_config(cfg, None, {}, w)) as gw:
        await gw.chat("Tell me about the weather in Oslo in some detail, please.", model="m",
                      identity=Identity(tenant="blue", team="blue", key_id="k-blue"))
    posts = [r for r in receiver.requests[since:] if r.method == "POST"]
    bodies: list[dict[str, Any]] = [r.json() for r in posts]
    assert sorted(b["threshold"] for b in bodies) == [0.5, 0.8, 1.0]  # posted concurrently
    for b in bodies:
        assert b["type"] == "gatewise.spend_alert" and b["subject"] == "blue"
        assert b["scope"] == "team" and b["unit"] == "tokens" and b["limit"] == 10
        text = b["text"]
        assert text.startswith("gatewise spend alert: team blue reached ")
        assert f"{round(b['threshold'] * 100)}% of its month tokens budget" in text
        assert "\n" not in text and "secret-token" not in text and "k-blue" not in text
    assert all(r.headers["Content-Type"] == "application/json" for r in posts)
