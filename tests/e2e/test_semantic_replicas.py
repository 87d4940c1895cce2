"""Two `gatewise serve` processes on one Redis share the semantic cache: a question answered
through one process serves its paraphrase through the other, as JSON and as a stream, and a
near miss is served by neither (Redis: skips without it, fails in CI)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from tests.e2e.test_governance_replicas import Replica
from tests.fakes.server import FakeServer
from tests.fakes.services import REDIS_URL, drop_redis_prefix, require_redis

MASTER = "sk-master-e2e-semantic"


@pytest.fixture
def replicas(tmp_path: Path, openai_fake: FakeServer) -> Iterator[list[Replica]]:
    require_redis()
    prefix = f"gw-e2e-sem-{uuid.uuid4().hex[:10]}:"
    config = tmp_path / "gatewise.yaml"
    config.write_text(yaml.safe_dump({
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": openai_fake.url + "/v1",
                            "api_key": "sk-up"}]},
        "server": {"master_key": MASTER, "warmup": False},
        "storage": {"redis_url": REDIS_URL, "redis_prefix": prefix,
                    "state_dir": str(tmp_path / "state")},
        "router": {"retry": {"max_retries": 0}},
        "cache": {"enabled": True, "semantic": {"enabled": True, "refresh_s": 0}},
    }))
    procs = [Replica(config, tmp_path, i) for i in range(2)]
    try:
        for p in procs:
            p.wait_ready()
        yield procs
    finally:
        for p in procs:
            p.stop()
        asyncio.run(drop_redis_prefix(REDIS_URL, prefix))


def _client(replica: Replica) -> openai.OpenAI:
    return openai.OpenAI(base_url=replica.url + "/v1", api_key=MASTER, max_retries=0)


def test_a_paraphrase_is_served_across_processes_streamed_and_not(
        replicas: list[Replica], openai_fake: FakeServer) -> None:
    a, b = (_client(r) for r in replicas)
    with a, b:
        first = a.chat.completions.with_raw_response.create(
            model="gpt", temperature=0,
            messages=[{"role": "user", "content": "What is the capital of France?"}])
        assert first.headers["x-gatewise-cache"] == "miss"
        answer = first.parse().choices[0].message.content
        asked = len(openai_fake.requests)
        plain = b.chat.completions.with_raw_response.create(
            model="gpt", temperature=0,
            messages=[{"role": "user", "content": "what is the capital of france"}])
        assert plain.headers["x-gatewise-cache"] == "semantic-hit"
        assert plain.parse().choices[0].message.content == answer
        streamed = b.chat.completions.with_raw_response.create(
            model="gpt", temperature=0, stream=True,
            messages=[{"role": "user", "content": "What's France's capital?"}])
        assert streamed.headers["x-gatewise-cache"] == "semantic-hit"
        text = "".join(ch.choices[0].delta.content or "" for ch in streamed.parse()
                       if ch.choices)
        assert text == answer
        assert len(openai_fake.requests) == asked  # neither paraphrase reached the upstream
        near = b.chat.completions.with_raw_response.create(
            model="gpt", temperature=0,
            messages=[{"role": "user", "content": "What is the capital of Spain?"}])
        assert near.headers["x-gatewise-cache"] == "miss"
