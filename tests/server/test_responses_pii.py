"""Stored Responses under a PII policy, through the real server and the official `openai` SDK,
on SQLite and on Redis: no seeded e-mail, phone number or name is at rest in clear text in
the store (its raw bytes are searched: the SQLite files, every Redis value under the
gateway's prefix), the upstream never sees one, a continuation through
`previous_response_id` (plain and streamed) sends the masked thread and still gives the
caller its values back, and retrieving a stored response (and its input items) restores them
for the caller's team, as `/v1/conversations/{id}` does."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.gateway import Gateway
from gatewise.security.crypto import generate_key
from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

MASTER = "sk-gatewise-responses-pii"
EMAIL = "priya.raghunathan@example.com"
PHONE = "+44 20 7123 4567"
NAME = "Priya Raghunathan"
OTHER = "wanjiru.kamau@example.org"
SEEDED = (EMAIL, PHONE, NAME, OTHER)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeServer]:
    from tests.fakes.pii_echo_fake import make_app

    with FakeServer(make_app) as srv:
        yield srv


class Served:
    def __init__(self, client: openai.OpenAI, state: Path, redis: tuple[str, str] | None):
        self.client = client
        self.state = state
        self.redis = redis

    def at_rest(self) -> bytes:
        """Every byte the stores hold: the SQLite files, and on Redis every value under
        the gateway's prefix (whatever type holds it)."""
        blobs = [p.read_bytes() for p in self.state.rglob("*") if p.is_file()]
        if self.redis is not None:
            import redis

            url, prefix = self.redis
            r = redis.Redis.from_url(url)
            for key in r.scan_iter(match=f"{prefix}*"):
                kind = r.type(key).decode()
                if kind == "string":
                    blobs.append(r.get(key) or b"")
                elif kind == "list":
                    blobs += r.lrange(key, 0, -1)
                elif kind == "hash":
                    blobs += list(r.hgetall(key).values())
                elif kind in ("set", "zset"):
                    blobs += list(r.smembers(key) if kind == "set" else r.zrange(key, 0, -1))
            r.close()
        return b"\n".join(blobs)


@pytest.fixture(params=["sqlite", "redis"])
def served(request: pytest.FixtureRequest, upstream: FakeServer,
           tmp_path: Path) -> Iterator[Served]:
    state = tmp_path / "state"
    storage: dict[str, Any] = {"state_dir": str(state)}
    redis: tuple[str, str] | None = None
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        redis = (url, f"gatewise-test:{os.getpid()}:{uuid.uuid4().hex[:8]}:")
        storage.update(redis_url=url, redis_prefix=redis[1])
    cfg, w = parse_config({
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": upstream.url + "/v1",
                            "api_key": "sk-upstream"}]},
        "server": {"master_key": MASTER},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
        "storage": storage,
        # The shared PII vault is sealed: it is the one place original values are kept.
        "security": {"encryption_key": generate_key()},
        "guardrails": {"default": {"pii": {"ner": True}}}})
    gateway = Gateway(resolve_config(cfg, None, {}, w))
    try:
        with GatewayServer(gateway=gateway) as srv, \
                openai.OpenAI(base_url=srv.url + "/v1", api_key=MASTER, max_retries=0) as c:
            yield Served(c, state, redis)
    finally:
        if redis is not None:
            import redis as redis_lib

            r = redis_lib.Redis.from_url(redis[0])
            keys = list(r.scan_iter(match=f"{redis[1]}*"))
            if keys:
                r.delete(*keys)
            r.close()


def _bodies(upstream: FakeServer, since: int) -> str:
    return "\n".join(r.body.decode() for r in upstream.requests[since:])


def _clear(text: str) -> list[str]:
    return [v for v in SEEDED if v in text or json.dumps(v)[1:-1] in text]


def test_a_stored_thread_is_masked_at_rest_and_continues(served: Served,
                                                         upstream: FakeServer) -> None:
    c = served.client
    since = len(upstream.requests)
    first = c.responses.create(
        model="gpt", instructions=f"You help {NAME}.", store=True,
        input=f"My e-mail is {EMAIL} and my phone is {PHONE}.")
    # The caller gets its own values back (the echo repeats every message).
    assert all(v in first.output_text for v in (EMAIL, PHONE, NAME)), first.output_text
    second = c.responses.create(model="gpt", previous_response_id=first.id,
                                input="Which e-mail did I give you?")
    assert EMAIL in second.output_text and "<EMAIL_" not in second.output_text
    sent = upstream.requests[-1].json()["messages"]
    # The continuation sent the stored thread (instructions are not carried over, as at
    # OpenAI): the masked turn and the masked answer.
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert "<EMAIL_1>" in sent[0]["content"] and "<EMAIL_1>" in sent[1]["content"]
    with c.responses.stream(model="gpt", previous_response_id=second.id,
                            input=f"Please copy {OTHER} too.") as s:
        third = s.get_final_response()
    assert EMAIL in third.output_text and OTHER in third.output_text
    assert _clear(_bodies(upstream, since)) == []

    # At rest: placeholders, never a seeded value (raw bytes of the store).
    raw = served.at_rest()
    assert b"<EMAIL_1>" in raw and b"<PHONE_1>" in raw and b"<PERSON_1>" in raw
    assert _clear(raw.decode("utf-8", "replace")) == []

    # Read back by the caller's team: restored, as conversations are.
    got = c.responses.retrieve(first.id)
    assert got.output_text == first.output_text and got.instructions == f"You help {NAME}."
    items = c.responses.input_items.list(first.id).data
    assert EMAIL in items[0].content[0].text  # type: ignore[union-attr]
    later = c.responses.retrieve(third.id)
    assert OTHER in later.output_text and EMAIL in later.output_text
