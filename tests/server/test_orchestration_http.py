"""Orchestration aliases over real HTTP: the official `openai` SDK calls a parallel, consensus
or cascade alias like any model and reads the per-mode headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer


@pytest.fixture(scope="module")
def client(openai_fake: FakeServer) -> Iterator[openai.OpenAI]:
    dep = {"api_base": openai_fake.url + "/v1", "api_key": "sk-upstream"}
    config = {
        "models": {
            "gpt": [{"model": "openai/gpt-4o-mini", **dep}],
            "broken": [{"model": "openai/gpt-fail-500", **dep}],
            "echo": [{"model": "fake/echo"}],
        },
        "orchestrations": {
            "fanout": {"mode": "parallel", "models": ["gpt", "broken", "echo"]},
            "vote": {"mode": "consensus", "models": ["gpt", "echo", "broken"]},
            "cheap-first": {"mode": "cascade", "models": ["broken", "gpt"], "gate": "non_empty"},
        },
    }
    with GatewayServer(config) as server, \
            openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as c:
        yield c


def _ask(client: openai.OpenAI, model: str, **kw: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi there"}], **kw)


def test_parallel_returns_each_models_choice_at_its_index(client: openai.OpenAI) -> None:
    raw = _ask(client, "fanout")
    out = raw.parse()
    assert out.model == "fanout"
    assert [(c.index, c.message.content) for c in out.choices] == [
        (0, "Hello! You said: hi there"), (2, "Hello! You said: hi there")]
    assert raw.headers["x-gatewise-models"] == "gpt,broken,echo"
    assert raw.headers["x-gatewise-failed"] == "broken=ProviderServerError"


def test_consensus_returns_the_winner_and_the_agreement(client: openai.OpenAI) -> None:
    raw = _ask(client, "vote")
    out = raw.parse()
    assert out.choices[0].message.content == "Hello! You said: hi there"
    assert raw.headers["x-gatewise-agreement"] == "0.667"
    assert raw.headers["x-gatewise-agreed"] == "true"
    assert raw.headers["x-gatewise-winner"] == "gpt"
    assert out.usage is not None and out.usage.completion_tokens > 0


def test_cascade_escalates_past_the_broken_model(client: openai.OpenAI) -> None:
    raw = _ask(client, "cheap-first")
    assert raw.parse().choices[0].message.content == "Hello! You said: hi there"
    assert raw.headers["x-gatewise-cascade"] == "broken>gpt"
    assert raw.headers["x-gatewise-deployment"] == "gpt:openai/gpt-4o-mini"


def test_streaming_an_orchestration_alias_works_with_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="vote", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "hi there"}])
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello! You said: hi there"
    assert chunks[-1].usage is not None


def test_an_orchestration_is_charged_what_its_branches_cost(client: openai.OpenAI) -> None:
    # The orchestration's own deployment has no price; a request through it still costs what
    # its models cost, or budgets could be spent through an orchestration alias for free.
    raw = _ask(client, "cheap-first")
    assert raw.headers["x-gatewise-cascade"] == "broken>gpt"
    direct = _ask(client, "gpt")  # the model that answered, asked directly: the same bill
    assert float(raw.headers["x-gatewise-cost-usd"]) == float(direct.headers["x-gatewise-cost-usd"]) > 0


def test_a_streamed_orchestration_is_charged_what_its_branches_cost(client: openai.OpenAI) -> None:
    # A stream's usage chunk reprices a call from the table; a price the orchestration fixed
    # from its branches must stand, or streaming would make an orchestration free.
    def streamed_cost(model: str) -> float:
        stream = client.chat.completions.create(
            model=model, stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "hi there"}])
        usage = list(stream)[-1].usage
        assert usage is not None and usage.model_extra is not None
        return float(usage.model_extra["cost_usd"])

    assert streamed_cost("cheap-first") == streamed_cost("gpt") > 0
