"""`previous_response_id` across two `gatewise serve` processes that share their conversation
store: Redis (with `memory.store: redis`) or PostgreSQL (`storage.database: postgres`). A
response created on one process is continued, retrieved and streamed on the other; the
continuation sends the whole thread upstream, and a stored response expires with the
store's TTL. Without Redis or PostgreSQL these tests skip, except in CI (`CI=true`), where
they fail."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.e2e.test_governance_replicas import Replica
from tests.fakes.server import FakeServer
from tests.fakes.services import REDIS_URL, require_pg, require_redis

MASTER = "sk-master-e2e-responses"
BALANCE = {"type": "function", "name": "get_balance",
           "parameters": {"type": "object", "properties": {"account": {"type": "string"}},
                          "required": ["account"]}}


def _config(tmp: Path, upstream: str, backend: str, name: str) -> dict[str, Any]:
    storage: dict[str, Any] = {"state_dir": str(tmp / "state")}
    memory: dict[str, Any] = {"ttl_s": 600}
    if backend == "redis":
        storage.update(redis_url=require_redis(), redis_prefix=f"{name}:")
        memory["store"] = "redis"
    else:
        storage.update(database="postgres", postgres_url=require_pg(), postgres_schema=name)
        memory["store"] = "database"
    return {
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": f"{upstream}/v1",
                            "api_key": "sk-upstream"}]},
        "server": {"master_key": MASTER, "warmup": False},
        "storage": storage, "memory": memory,
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
    }


@pytest.fixture(params=["redis", "postgres"])
def pair(request: pytest.FixtureRequest, tmp_path: Path,
         openai_fake: FakeServer) -> Iterator[tuple[list[Replica], str, str]]:
    backend: str = request.param
    name = f"gw_resp_{uuid.uuid4().hex[:10]}"
    path = tmp_path / "gatewise.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, openai_fake.url, backend, name)))
    replicas = [Replica(path, tmp_path, i) for i in range(2)]
    try:
        for r in replicas:
            r.wait_ready()
        yield replicas, backend, name
    finally:
        for r in replicas:
            r.stop()
        if backend == "redis":
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(f"{name}:*"))
            if keys:
                client.delete(*keys)
            client.close()
        else:
            import psycopg

            with psycopg.connect(require_pg(), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def test_a_response_continues_on_the_other_process(
        pair: tuple[list[Replica], str, str], openai_fake: FakeServer) -> None:
    (one, two), backend, name = pair
    a = openai.OpenAI(base_url=one.url + "/v1", api_key=MASTER, max_retries=0)
    b = openai.OpenAI(base_url=two.url + "/v1", api_key=MASTER, max_retries=0)
    try:
        first = a.responses.create(model="gpt", input="my balance?", tools=[BALANCE],
                                   tool_choice="required")
        call = first.output[0]
        assert call.type == "function_call"
        second = b.responses.create(
            model="gpt", previous_response_id=first.id, tools=[BALANCE],
            input=[{"type": "function_call_output", "call_id": call.call_id,
                    "output": "12 EUR"}])
        sent = openai_fake.requests[-1].json()["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
        assert sent[1]["tool_calls"][0]["id"] == call.call_id
        assert b.responses.retrieve(first.id).output[0].call_id == call.call_id  # type: ignore[union-attr]
        assert a.responses.retrieve(second.id).output_text == second.output_text
        # A streamed continuation is stored before its last event: the other process has it.
        with a.responses.stream(model="gpt", input="and in USD?",
                                previous_response_id=second.id) as s:
            third = s.get_final_response()
        got = b.responses.retrieve(third.id)
        assert got.output_text == third.output_text and got.previous_response_id == second.id
        sent = openai_fake.requests[-1].json()["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
        b.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            a.responses.retrieve(first.id)
    finally:
        a.close()
        b.close()
    if backend == "redis":  # stored responses expire like idle conversations
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        scope = "responses/default"
        ttl = client.pttl(f"{name}:conv:{len(scope)}:{scope}:{third.id}:i")
        client.close()
        assert 0 < ttl <= 600_000
    else:
        import psycopg

        with psycopg.connect(require_pg()) as conn:
            row = conn.execute(f'SELECT metadata, expires FROM "{name}".conv_meta '
                               "WHERE scope = %s AND id = %s",
                               ("responses/default", third.id)).fetchone()
        assert row is not None and row[1] is not None
        metadata = row[0] if isinstance(row[0], dict) else json.loads(row[0])
        assert metadata["response"]["id"] == third.id
