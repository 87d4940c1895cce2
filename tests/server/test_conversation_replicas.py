"""A conversation served by three gateway replicas that share Redis: 50 turns, each sent (only
the new turn) to the next replica in turn, some streamed; every replica sees every earlier
turn, and all 100 messages are kept in order (Redis: skips without it, fails in CI)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import openai
import redis

from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer
from tests.fakes.services import REDIS_URL, require_redis

MASTER = "sk-gatewise-test-replicas-master"
TURNS = 50


def test_fifty_turns_over_three_replicas_keep_every_turn(openai_fake: FakeServer,
                                                          tmp_path: Path) -> None:
    require_redis()
    prefix = f"gw-memory-{os.getpid()}-{time.time_ns()}:"
    cfg = {
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": openai_fake.url + "/v1",
                            "api_key": "sk-up"}]},
        "server": {"master_key": MASTER},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
        "storage": {"state_dir": str(tmp_path), "redis_url": REDIS_URL,
                    "redis_prefix": prefix},
        "memory": {"ttl_s": 600},
    }
    conv = "fifty-turns"
    answers: list[str] = []
    try:
        with GatewayServer(cfg) as a, GatewayServer(cfg) as b, GatewayServer(cfg) as c:
            replicas = [a, b, c]
            clients = [openai.OpenAI(base_url=s.url + "/v1", api_key=MASTER, max_retries=0)
                       for s in replicas]
            for turn in range(TURNS):
                client = clients[turn % 3]
                kw = {"model": "gpt", "messages": [{"role": "user", "content": f"turn {turn}"}],
                      "extra_headers": {"x-gatewise-conversation": conv}}
                if turn % 5 == 4:
                    answers.append("".join(ch.choices[0].delta.content or "" for ch in
                                           client.chat.completions.create(stream=True, **kw)
                                           if ch.choices))
                else:
                    answers.append(client.chat.completions.create(**kw).choices[0]
                                   .message.content or "")
                chats = [r for r in openai_fake.requests if r.path.endswith("/completions")]
                sent = chats[-1].json()["messages"]
                assert len(sent) == 2 * turn + 1, f"turn {turn} saw {len(sent)} messages"
            for client in clients:
                client.close()
            stored = httpx.get(f"{b.url}/v1/conversations/{conv}", timeout=30,
                               headers={"authorization": f"Bearer {MASTER}"}).json()
        expected = []
        for turn in range(TURNS):
            expected += [{"role": "user", "content": f"turn {turn}"},
                         {"role": "assistant", "content": answers[turn]}]
        assert stored["messages"] == 2 * TURNS and stored["data"] == expected
        ttl = redis.Redis.from_url(REDIS_URL).pttl(
            f"{prefix}conv:7:default:{conv}:m")  # idle conversations expire
        assert 0 < ttl <= 600_000
    finally:
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(prefix + "*"))
        if keys:
            r.delete(*keys)
        r.close()
