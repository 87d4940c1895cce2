"""Cost on every response: `x-gatewise-cost-usd` on a completion, `usage.cost_usd` in a
stream's usage chunk (read through the official SDK), from the deployment's prices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

INPUT, OUTPUT = 2.5, 10.0  # USD per million tokens


@pytest.fixture
def server(openai_fake: FakeServer, tmp_path: Path) -> Iterator[GatewayServer]:
    cfg = {"models": {"gpt": [{"model": "openai/gpt-4o", "api_base": openai_fake.url + "/v1",
                               "api_key": "sk-x", "prices": {"input": INPUT, "output": OUTPUT}}]},
           "storage": {"state_dir": str(tmp_path)}}
    with GatewayServer(cfg) as srv:
        yield srv


def expected(prompt: int, completion: int) -> float:
    return (prompt * INPUT + completion * OUTPUT) / 1e6


def test_a_completion_carries_its_cost_header(server: GatewayServer) -> None:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="gpt", messages=[{"role": "user", "content": "Say something short"}])
    r = raw.parse()
    assert r.usage is not None and r.usage.completion_tokens > 0
    cost = float(raw.headers["x-gatewise-cost-usd"])
    assert cost == pytest.approx(expected(r.usage.prompt_tokens, r.usage.completion_tokens))


def test_a_stream_reports_its_cost_in_the_usage_chunk(server: GatewayServer) -> None:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as c:
        chunks = list(c.chat.completions.create(
            model="gpt", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Say something short"}]))
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0
    cost = (usage.model_extra or {})["cost_usd"]
    assert cost == pytest.approx(expected(usage.prompt_tokens, usage.completion_tokens))


async def test_cost_routing_prices_deployments_from_the_shipped_table(
        openai_fake: FakeServer, tmp_path: Path) -> None:
    from gatewise import Gateway
    from gatewise.config.loader import parse_config, resolve_config

    base = openai_fake.url + "/v1"
    cfg, w = parse_config({
        "models": {"gpt": [{"model": "openai/gpt-4o", "api_base": base, "api_key": "k"},
                           {"model": "openai/gpt-4o-mini", "api_base": base, "api_key": "k"}]},
        "router": {"strategy": "cost"}, "storage": {"state_dir": str(tmp_path)}})
    async with Gateway(resolve_config(cfg, None, {}, w)) as gw:
        picked = {(await gw.chat("hi", model="gpt")).info.model for _ in range(5)}
    assert picked == {"gpt-4o-mini"}  # no prices in config: the table knows mini is cheaper
