"""The console's Titles page in a real browser (Debian's headless Chromium through Playwright,
the console tests' launcher) against the real server and the fake OpenAI upstream: generate
with a loading state, edit by hand, accept, regenerate past the cache, the same request a
second time from the cache, and the messages for a refused field, a spent budget and a full
rate limit. Screenshots go to `tests/console/artifacts/titles-*.png`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.console.browser import ARTIFACTS, open_page, sign_in, watch_errors
from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

pytest.importorskip("playwright.sync_api")

MASTER = "sk-master-titles-page"


@pytest.fixture(scope="module")
def gw(openai_fake: FakeServer) -> Iterator[GatewayServer]:
    dep = {"api_base": openai_fake.url + "/v1", "api_key": "sk-upstream"}
    config = {"models": {"titles": [{"model": "openai/gpt-4o-mini", **dep}],
                         # the fake's first byte comes after 1.5 s: the loading state shows
                         "slow": [{"model": "openai/gpt-slow", **dep}]},
              "default_model": "titles", "titles": {"model": "titles"},
              "server": {"master_key": MASTER, "warmup": False},
              "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}}}
    with GatewayServer(config) as srv:
        yield srv


def _admin(gw: GatewayServer, path: str, body: dict[str, Any]) -> Any:
    r = httpx.post(gw.url + path, json=body, timeout=30,
                   headers={"authorization": f"Bearer {MASTER}"})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def keys(gw: GatewayServer) -> dict[str, str]:
    _admin(gw, "/admin/teams", {"id": "writers"})
    _admin(gw, "/admin/teams", {"id": "broke"})
    _admin(gw, "/admin/budgets", {"scope": "team", "subject": "broke", "period": "day",
                                  "limit_tokens": 10})
    member = _admin(gw, "/admin/keys", {"name": "writer", "team": "writers", "role": "member"})
    limited = _admin(gw, "/admin/keys", {"name": "one-a-minute", "team": "writers",
                                         "role": "member", "rpm": 1})
    broke = _admin(gw, "/admin/keys", {"name": "broke", "team": "broke", "role": "member"})
    return {"member": member["key"], "limited": limited["key"], "broke": broke["key"]}


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    yield pg
    context.close()


def _upstream(fake: FakeServer, description: str) -> int:
    return sum(1 for r in list(fake.requests) if r.path.endswith("/chat/completions")
               and r.json()["messages"][-1].get("content") == description)


def _done(page: Any) -> None:
    """Waits until the request in flight ended (its status or its error is shown)."""
    page.wait_for_function("() => document.querySelector('#ti-generate').textContent === "
                           "'Generate' && !document.querySelector('#ti-generate').disabled")


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"titles-{name}.png"), full_page=True)


def test_generate_edit_accept_regenerate_and_cached_the_second_time(
        page: Any, gw: GatewayServer, keys: dict[str, str], openai_fake: FakeServer) -> None:
    errors = watch_errors(page)
    sign_in(page, gw.url, keys["member"])
    open_page(page, gw.url, "titles")
    assert page.inner_text("#page h1") == "Titles"
    description = f"Let workspace admins export the audit log as CSV ({uuid.uuid4().hex[:6]})."
    page.fill("#ti-description", description)
    page.select_option("#ti-style", "detailed")
    page.fill("#ti-max", "60")
    page.select_option("#ti-category", "feature")
    page.fill("#ti-examples", "Add SSO login\nSupport SCIM provisioning")
    page.select_option("#ti-model", "slow")  # a slow first byte: the loading state is visible
    page.click("#ti-generate")
    page.wait_for_selector("#ti-generate:disabled")
    assert page.inner_text("#ti-generate") == "Generating…"
    assert page.get_attribute("#ti-title", "aria-busy") == "true"
    _done(page)
    page.wait_for_selector("#ti-fresh")
    expected = f"Hello! You said: {description}"[:60].rsplit(" ", 1)[0]
    assert page.input_value("#ti-title") == expected
    assert "slow" in page.inner_text("#ti-status")

    # The same epic on the usual model: generated once, then from the cache.
    page.select_option("#ti-model", "titles")
    page.click("#ti-generate")
    _done(page)
    page.wait_for_selector("#ti-fresh")
    first = page.input_value("#ti-title")
    assert _upstream(openai_fake, description) == 2
    page.click("#ti-generate")
    _done(page)
    page.wait_for_selector("#ti-cached")
    assert page.inner_text("#ti-cached") == "from cache"
    assert page.input_value("#ti-title") == first
    assert _upstream(openai_fake, description) == 2  # the cache answered
    _shot(page, "cached")

    # Edited by hand, then accepted: kept in the list (and in this browser).
    page.fill("#ti-title", "Export the audit log as CSV")
    page.click("#ti-accept")
    page.wait_for_selector("#ti-accepted-note")
    assert page.inner_text("#ti-accepted li") == "Export the audit log as CSV"
    stored = page.evaluate("() => JSON.parse(localStorage.getItem('gatewise.titles.accepted'))")
    assert stored == ["Export the audit log as CSV"]

    # Regenerate skips the cache: the upstream is asked again.
    page.click("#ti-regenerate")
    _done(page)
    page.wait_for_selector("#ti-fresh")
    assert _upstream(openai_fake, description) == 3
    assert page.input_value("#ti-title") == first  # the fake upstream answers alike
    _shot(page, "regenerated")
    assert page.inner_text("#ti-error") == ""
    assert errors == []


def test_a_refused_field_is_explained_and_marked(page: Any, gw: GatewayServer,
                                                 keys: dict[str, str]) -> None:
    sign_in(page, gw.url, keys["member"])
    open_page(page, gw.url, "titles")
    page.fill("#ti-description", "    ")  # passes the browser's `required`, not the gateway
    page.click("#ti-generate")
    _done(page)
    message = page.inner_text("#ti-error")
    assert message.startswith("Please check the form: description must be 1 to 8000")
    assert page.get_attribute("#ti-description", "aria-invalid") == "true"
    _shot(page, "invalid")


def test_a_spent_budget_and_a_full_rate_limit_say_so(page: Any, gw: GatewayServer,
                                                     keys: dict[str, str]) -> None:
    sign_in(page, gw.url, keys["broke"])
    open_page(page, gw.url, "titles")
    page.fill("#ti-description", "Anything at all")
    page.click("#ti-generate")
    _done(page)
    assert page.inner_text("#ti-error").startswith("Your team's budget is spent")
    _shot(page, "budget")
    page.context.clear_cookies()
    sign_in(page, gw.url, keys["limited"])
    open_page(page, gw.url, "titles")
    page.fill("#ti-description", f"First of the minute {uuid.uuid4().hex[:6]}")
    page.click("#ti-generate")
    _done(page)
    page.wait_for_selector("#ti-fresh")
    shown = page.input_value("#ti-title")
    page.click("#ti-regenerate")
    _done(page)
    message = page.inner_text("#ti-error")
    assert message.startswith("Too many requests: the rate limit is reached. Try again in ")
    assert page.input_value("#ti-title") == shown  # the refused regeneration loses nothing
    _shot(page, "rate-limited")
