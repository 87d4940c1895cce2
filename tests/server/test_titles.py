"""`POST /v1/titles` through the real server against the fake OpenAI upstream (its real wire
format over HTTP): the title object and its headers, the stream's frames, post-processing,
the cache (exact, then a similar description by meaning, Regenerate with `no-cache`), every
field's 400 with nothing recorded, the caller's budget and rate limit, upstream failures as
chat reports them, and the library's `Gateway.titles` against the same upstream."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.gateway import Gateway
from gatewise.titles.service import max_tokens_for
from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer
from tests.waiting import wait_until

MASTER = "sk-titles-master"
ADMIN = {"authorization": f"Bearer {MASTER}"}
TITLE_KEYS = {"id", "object", "created", "model", "title", "style", "category", "cached",
              "usage", "cost_usd"}


def _config(upstream: FakeServer, state: Path) -> dict[str, Any]:
    base = upstream.url + "/v1"
    return {
        "models": {
            # Dear tokens (1,000 USD per million), so a small budget runs out in a few calls.
            "titles": [{"model": "openai/gpt-4o-mini", "api_base": base, "api_key": "sk-up",
                        "prices": {"input": 1000.0, "output": 1000.0}}],
            "broken": [{"model": "openai/gpt-fail-500", "api_base": base, "api_key": "sk-up"}],
            # Its stream stops after two words, without an end marker.
            "cut": [{"model": "openai/gpt-cut", "api_base": base, "api_key": "sk-up"}],
        },
        "default_model": "titles",
        "titles": {"model": "titles"},  # the cache preset: exact + semantic for this alias
        "cache": {"semantic": {"refresh_s": 0}},
        "server": {"master_key": MASTER},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
        "storage": {"state_dir": str(state)},
    }


@pytest.fixture(scope="module")
def server(openai_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[GatewayServer]:
    with GatewayServer(_config(openai_fake, tmp_path_factory.mktemp("titles"))) as srv:
        yield srv


def _unique(text: str) -> str:
    """A description no other test (nor another run against the shared fake) sends."""
    return f"{text} [{uuid.uuid4().hex[:8]}]"


def _title(srv: GatewayServer, body: dict[str, Any], key: str = MASTER,
           headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{srv.url}/v1/titles", json=body, timeout=60,
                      headers={"authorization": f"Bearer {key}", **(headers or {})})


def _sent(upstream: FakeServer, description: str) -> list[dict[str, Any]]:
    """The upstream request bodies whose user message is `description`."""
    out = []
    for r in list(upstream.requests):
        if not r.path.endswith("/chat/completions"):
            continue
        body = r.json()
        if body["messages"][-1].get("content") == description:
            out.append(body)
    return out


def _key(srv: GatewayServer, **body: Any) -> tuple[str, str]:
    r = httpx.post(f"{srv.url}/admin/keys", headers=ADMIN, json={"name": "t", **body})
    assert r.status_code == 201, r.text
    return r.json()["key"], r.json()["id"]


def _events(r: httpx.Response) -> list[Any]:
    out: list[Any] = []
    for block in r.text.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_a_title_with_usage_cost_and_the_prompt_upstream(server: GatewayServer,
                                                         openai_fake: FakeServer) -> None:
    text = _unique("Admins want SSO.")
    r = _title(server, {"description": f"  {text}  ", "style": "detailed", "max_length": 200,
                        "category": "feature", "examples": ["Add audit log export"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == TITLE_KEYS
    assert body["object"] == "title" and body["id"].startswith("title_")
    # The fake echoes the user message; the trailing period is gone.
    assert body["title"] == f"Hello! You said: {text}".rstrip(".")
    assert (body["model"], body["style"], body["category"], body["cached"]) == (
        "titles", "detailed", "feature", False)
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert body["cost_usd"] == pytest.approx(usage["total_tokens"] * 1000 / 1e6)
    assert r.headers["x-gatewise-cache"] == "miss"
    assert r.headers["x-request-id"]
    [sent] = _sent(openai_fake, text)
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.7
    assert sent["max_tokens"] == max_tokens_for(200)
    system = sent["messages"][0]["content"]
    assert sent["messages"][0]["role"] == "system"
    assert "Style: detailed." in system and "Category: feature" in system
    assert "- Add audit log export" in system and "at most 200 characters" in system


def test_a_long_answer_is_cut_on_a_word_boundary(server: GatewayServer) -> None:
    text = _unique("Let enterprise admins manage single sign-on settings for every workspace")
    r = _title(server, {"description": text, "max_length": 30})
    assert r.status_code == 200, r.text
    title = r.json()["title"]
    assert title == "Hello! You said: Let"  # the next word would pass 30 characters
    assert len(title) <= 30


def test_the_second_time_is_cached_and_costs_nothing(server: GatewayServer,
                                                      openai_fake: FakeServer) -> None:
    text = _unique("Export invoices as PDF from the billing page")
    first = _title(server, {"description": text})
    again = _title(server, {"description": text})
    assert first.status_code == again.status_code == 200
    assert again.headers["x-gatewise-cache"] == "hit"
    assert again.json()["cached"] is True and again.json()["cost_usd"] == 0.0
    assert again.json()["title"] == first.json()["title"]
    assert len(_sent(openai_fake, text)) == 1
    # Another style is another prompt: asked upstream, never served the first title.
    other = _title(server, {"description": text, "style": "detailed"})
    assert other.headers["x-gatewise-cache"] == "miss"
    assert len(_sent(openai_fake, text)) == 2


def test_a_similar_description_is_answered_from_the_cache(server: GatewayServer,
                                                          openai_fake: FakeServer) -> None:
    # Cosine 0.93 with the local embedder, and more than a small edit apart (the false-hit
    # guard's near-miss shape); the module's server is fresh, so no earlier run's entry counts.
    first = ("Let admins of enterprise workspaces sign in with single sign-on through their "
             "identity provider")
    similar = ("Enterprise workspace administrators should be able to log in using single "
               "sign-on from their company identity provider")
    a = _title(server, {"description": first, "category": "feature"})
    b = _title(server, {"description": similar, "category": "feature"})
    assert a.status_code == b.status_code == 200
    assert b.headers["x-gatewise-cache"] == "semantic_hit"
    assert b.json()["cached"] is True and b.json()["title"] == a.json()["title"]
    assert _sent(openai_fake, similar) == []


def test_regenerate_skips_the_cache_and_goes_upstream(server: GatewayServer,
                                                      openai_fake: FakeServer) -> None:
    text = _unique("Rate limit the public search API per team")
    assert _title(server, {"description": text}).status_code == 200
    again = _title(server, {"description": text}, headers={"x-gatewise-cache": "no-cache"})
    assert again.status_code == 200
    assert again.headers["x-gatewise-cache"] == "miss" and again.json()["cached"] is False
    assert len(_sent(openai_fake, text)) == 2


def test_a_stream_of_deltas_then_the_title_then_done(server: GatewayServer) -> None:
    text = _unique("Show usage per team on the dashboard.")
    r = _title(server, {"description": text, "stream": True})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-gatewise-cache"] == "miss"
    events = _events(r)
    assert events[-1] == "[DONE]"
    final = events[-2]
    deltas = events[:-2]
    assert set(final) == TITLE_KEYS and final["object"] == "title"
    assert len(deltas) > 1 and all(d["object"] == "title.delta" for d in deltas)
    assert "".join(d["delta"] for d in deltas) == final["title"] == \
        f"Hello! You said: {text}".rstrip(".")
    assert final["cached"] is False and final["usage"]["total_tokens"] > 0
    # The same request again streams from the cache, marked so in the last frame.
    again = _title(server, {"description": text, "stream": True})
    assert again.headers["x-gatewise-cache"] == "hit"
    events = _events(again)
    assert events[-2]["cached"] is True and events[-2]["title"] == final["title"]
    assert "".join(d["delta"] for d in events[:-2]) == final["title"]


@pytest.mark.parametrize(("body", "param"), [
    ({}, "description"),
    ({"description": "   "}, "description"),
    ({"description": "x" * 8001}, "description"),
    ({"description": "a\u0000b"}, "description"),
    ({"description": "d", "style": "long"}, "style"),
    ({"description": "d", "max_length": 9}, "max_length"),
    ({"description": "d", "max_length": 201}, "max_length"),
    ({"description": "d", "max_length": "eighty"}, "max_length"),
    ({"description": "d", "category": "epic"}, "category"),
    ({"description": "d", "examples": ["a"] * 11}, "examples"),
    ({"description": "d", "examples": ["x" * 201]}, "examples[0]"),
    ({"description": "d", "model": ""}, "model"),
    ({"description": "d", "stream": "yes"}, "stream"),
    ({"description": "d", "extra": 1}, "extra"),
])
def test_a_bad_field_is_an_openai_400_naming_it(server: GatewayServer, body: dict[str, Any],
                                               param: str) -> None:
    r = _title(server, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert set(error) == {"message", "type", "param", "code"}


def test_nothing_is_recorded_for_a_refused_request(server: GatewayServer) -> None:
    key, key_id = _key(server)
    for body in ({"description": " "}, {"description": "d", "max_length": 5},
                 {"description": "d", "style": "x"}, {"description": "d", "category": "x"}):
        assert _title(server, body, key=key).status_code == 400
    ok = _title(server, {"description": _unique("Archive old projects")}, key=key)
    assert ok.status_code == 200

    def records() -> list[dict[str, Any]]:
        r = httpx.get(f"{server.url}/admin/usage/records", params={"key": key_id},
                      headers=ADMIN)
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    wait_until(lambda: len(records()) >= 1, 10, what="the valid call's ledger record")
    [only] = records()
    assert only["request_id"] == ok.headers["x-request-id"]


def test_without_a_key_it_is_401(server: GatewayServer) -> None:
    r = httpx.post(f"{server.url}/v1/titles", json={"description": "d"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_a_spent_team_budget_refuses_as_chat_does(server: GatewayServer) -> None:
    team = f"titles-{uuid.uuid4().hex[:6]}"
    assert httpx.post(f"{server.url}/admin/teams", headers=ADMIN,
                      json={"id": team}).status_code == 201
    assert httpx.post(f"{server.url}/admin/budgets", headers=ADMIN, json={
        "scope": "team", "subject": team, "period": "day", "limit_usd": 0.5}).status_code == 201
    key, _ = _key(server, team=team)
    statuses = []
    for n in range(30):
        r = _title(server, {"description": _unique(f"Budget probe {n}")}, key=key)
        statuses.append(r.status_code)
        if r.status_code != 200:
            break
    assert statuses[0] == 200 and statuses[-1] == 402, statuses
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
    chat = httpx.post(f"{server.url}/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {key}"},
                      json={"model": "titles", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 402
    assert (chat.json()["error"]["type"], chat.json()["error"]["code"]) == (
        error["type"], error["code"])


def test_a_full_rate_limit_window_is_429_with_retry_after(server: GatewayServer) -> None:
    key, _ = _key(server, rpm=1)
    assert _title(server, {"description": _unique("Limit one")}, key=key).status_code == 200
    r = _title(server, {"description": _unique("Limit two")}, key=key)
    assert r.status_code == 429
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-remaining-requests"] == "0"


def test_an_upstream_failure_is_reported_as_chat_reports_it(server: GatewayServer) -> None:
    r = _title(server, {"description": "d", "model": "broken"})
    chat = httpx.post(f"{server.url}/v1/chat/completions", headers=ADMIN, timeout=30, json={
        "model": "broken", "messages": [{"role": "user", "content": "d"}]})
    assert r.status_code == chat.status_code >= 500
    assert r.json()["error"]["code"] == chat.json()["error"]["code"]
    streamed = _title(server, {"description": "d", "model": "broken", "stream": True})
    assert streamed.status_code == chat.status_code  # refused before the first byte
    unknown = _title(server, {"description": "d", "model": "no-such-alias"})
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"


def test_a_stream_that_fails_after_its_first_byte_ends_with_an_error_event(
        server: GatewayServer) -> None:
    r = _title(server, {"description": _unique("Cut short"), "model": "cut", "stream": True})
    assert r.status_code == 200  # the headers were out when the upstream broke off
    events = _events(r)
    assert "[DONE]" not in events
    error = events[-1]["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "upstream_bad_response"
    assert all(e.get("object") == "title.delta" for e in events[:-1])


def test_title_is_a_named_prompt_over_chat_completions(server: GatewayServer,
                                                       openai_fake: FakeServer) -> None:
    text = _unique("Admins want SSO")
    r = httpx.post(f"{server.url}/v1/chat/completions", headers=ADMIN, timeout=30, json={
        "model": "titles", "messages": [{"role": "user", "content": text}],
        "metadata": {"prompt": "title",
                     "prompt_variables": json.dumps({"style": "concise", "max_length": 40})}})
    assert r.status_code == 200, r.text
    [sent] = _sent(openai_fake, text)
    assert "at most 40 characters" in sent["messages"][0]["content"]


def test_the_openapi_document_describes_the_route(server: GatewayServer) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    op = doc["paths"]["/v1/titles"]["post"]
    assert op["operationId"] == "createTitle"
    props = doc["components"]["schemas"]["TitleRequest"]["properties"]
    assert props["max_length"]["minimum"] == 10 and props["max_length"]["maximum"] == 200
    assert set(props["style"]["enum"]) == {"concise", "detailed"}
    assert set(op["responses"]) >= {"200", "400", "401", "402", "429", "502"}


def test_the_library_generates_against_the_same_upstream(openai_fake: FakeServer,
                                                         tmp_path: Path) -> None:
    raw = _config(openai_fake, tmp_path)
    raw.pop("server")
    cfg, warnings = parse_config(raw)
    gw = Gateway(resolve_config(cfg, None, {}, warnings))
    text = _unique("Let teams pin dashboards.")
    try:
        out = gw.titles.generate(text, max_length=60)
        assert out.title == f"Hello! You said: {text}".rstrip(".")
        assert (out.cached, out.model) == (False, "titles")
        assert gw.titles.generate(text, max_length=60).cached is True
    finally:
        gw.close()
    gw = Gateway(resolve_config(cfg, None, {}, warnings))

    async def run() -> None:
        try:
            out = await gw.titles.agenerate(text, max_length=60, cache={"mode": "no-cache"})
            assert out.cached is False and out.cost_usd is not None and out.cost_usd > 0
        finally:
            await gw.aclose()

    asyncio.run(run())
    assert len(_sent(openai_fake, text)) == 2
