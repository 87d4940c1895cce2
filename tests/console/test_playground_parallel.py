"""The playground and a `parallel` orchestration, in a real browser (Debian's headless Chromium
through Playwright) against the real server: an alias over three models, the middle one
failing, answers with one choice per model (`index` = the model's position) and the
playground shows one reply per model, labelled by it, and the failed model as failed, streamed
and not; an ordinary alias keeps its one plain "assistant" reply, unchanged. Screenshots go to
`tests/console/artifacts/playground-parallel-*.png`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.browser import ARTIFACTS, open_page, sign_in, watch_errors
from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

pytest.importorskip("playwright.sync_api")

MASTER = "sk-master-playground-parallel"
# What an ordinary reply was before replies were split by choice, node for node.
PLAIN_REPLY = ('<div class="msg assistant"><span class="who-label">assistant</span>'
               '<span class="text">Hello! You said: {}</span></div>')


@pytest.fixture(scope="module")
def gw(openai_fake: FakeServer,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    dep = {"api_base": openai_fake.url + "/v1", "api_key": "sk-upstream"}
    config = {"models": {"gpt": [{"model": "openai/gpt-4o-mini", **dep}],
                         "echo": [{"model": "fake/echo"}],
                         "broken": [{"model": "fake/fail-500"}]},
              "server": {"master_key": MASTER, "warmup": False},
              "router": {"retry": {"max_retries": 0}},
              "storage": {"state_dir": str(tmp_path_factory.mktemp("playground-parallel"))},
              # The failing model sits between two that answer: its gap must not shift them.
              "orchestrations": {"trio": {"mode": "parallel",
                                          "models": ["echo", "broken", "gpt"]}}}
    with GatewayServer(config) as srv:
        yield srv


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    yield pg
    context.close()


def _ask(page: Any, model: str, text: str, *, stream: bool) -> None:
    page.click("#pg-clear")
    page.select_option("#pg-model", model)
    page.set_checked("#pg-stream", stream)
    page.fill("#pg-prompt", text)
    page.click("#pg-send")
    page.wait_for_function("() => !document.querySelector('#pg-messages [aria-busy]')"
                           " && document.querySelector('#pg-messages .assistant')"
                           " && document.querySelector('#pg-timeline li.step-done:not(.in-branch)')")


def _replies(page: Any) -> list[tuple[str, str, str]]:
    """(class, label, text) of every reply after the user's message."""
    return [(n.get_attribute("class"), n.query_selector(".who-label").inner_text(),
             n.query_selector(".text").inner_text())
            for n in page.query_selector_all("#pg-messages .msg:not(.user)")]


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "plain"])
def test_each_model_of_a_parallel_alias_gets_its_own_reply(page: Any, gw: GatewayServer,
                                                            stream: bool) -> None:
    errors = watch_errors(page)
    sign_in(page, gw.url, MASTER)
    open_page(page, gw.url, "playground")
    _ask(page, "trio", "all of you", stream=stream)
    assert _replies(page) == [
        ("msg assistant", "assistant · echo", "Hello! You said: all of you"),
        ("msg error", "broken · failed", "no answer: ProviderServerError"),
        ("msg assistant", "assistant · gpt", "Hello! You said: all of you"),
    ]
    models = [n.get_attribute("data-model") for n in page.query_selector_all("#pg-messages [data-model]")]
    assert models == ["echo", "broken", "gpt"]
    # The timeline still shows each branch and the orchestration's own summary.
    branches = sorted({e.inner_text() for e in page.query_selector_all(
        "#pg-timeline li.in-branch .branch")})
    assert branches == ["branch 0 echo", "branch 1 broken", "branch 2 gpt"]
    assert page.query_selector("#pg-timeline li.step-parallel") is not None
    assert "0 in" not in page.inner_text("#pg-stats")
    page.screenshot(path=str(ARTIFACTS / f"playground-parallel-{'streamed' if stream else 'plain'}.png"),
                    full_page=True)
    # The next turn continues from the first model's answer: the conversation still works.
    page.fill("#pg-prompt", "and again")
    page.click("#pg-send")
    page.wait_for_function("() => document.querySelectorAll('#pg-messages .msg.user').length === 2"
                           " && !document.querySelector('#pg-messages [aria-busy]')"
                           " && document.querySelectorAll('#pg-messages [data-model]').length === 6")
    assert [r[2] for r in _replies(page)][3:] == [
        "Hello! You said: and again", "no answer: ProviderServerError",
        "Hello! You said: and again"]
    assert errors == []


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "plain"])
def test_an_ordinary_chat_keeps_its_one_plain_reply(page: Any, gw: GatewayServer,
                                                    stream: bool) -> None:
    errors = watch_errors(page)
    sign_in(page, gw.url, MASTER)
    open_page(page, gw.url, "playground")
    for model in ("echo", "gpt"):
        _ask(page, model, f"just {model}", stream=stream)
        replies = page.query_selector_all("#pg-messages .msg:not(.user)")
        assert [r.evaluate("n => n.outerHTML") for r in replies] == [
            PLAIN_REPLY.format(f"just {model}")]
    page.screenshot(path=str(ARTIFACTS / f"playground-plain-{'streamed' if stream else 'plain'}.png"),
                    full_page=True)
    assert errors == []
