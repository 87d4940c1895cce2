"""The everyday-turn set (`guardrails/data/everyday.txt`: greetings, thanks, short follow-ups,
legitimate instructions, many languages) sent through the real server with the injection guard
blocking: none is refused. The turns go in batches, each turn its own user message at the end of
the conversation (the guard scans every message of the trailing user run on its own), so the
whole set takes a few dozen requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewise.guardrails.injection.corpus import everyday_samples
from tests.fakes.gateway import GatewayServer

MASTER = "sk-everyday-master"
BATCH = 25


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    state: Path = tmp_path_factory.mktemp("everyday")
    cfg: dict[str, Any] = {
        "models": {"assistant": [{"model": "fake/echo"}]},
        "server": {"master_key": MASTER, "warmup": True},
        "storage": {"state_dir": str(state)},
        "guardrails": {"aliases": {"assistant": {"injection": {"action": "block"}}}},
    }
    with GatewayServer(cfg, warmup=True) as srv:
        yield srv


def test_no_everyday_turn_is_blocked(server: GatewayServer) -> None:
    turns = [s.text for s in everyday_samples()]
    assert len(turns) >= 500
    blocked: list[str] = []
    headers = {"authorization": f"Bearer {MASTER}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        for start in range(0, len(turns), BATCH):
            batch = turns[start:start + BATCH]
            while batch:
                body = {"model": "assistant",
                        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                     *({"role": "user", "content": t} for t in batch)]}
                r = client.post("/v1/chat/completions", json=body)
                if r.status_code == 200:
                    break
                assert r.status_code == 400, r.text
                err = r.json()["error"]
                assert err["code"] == "prompt_injection_detected", err
                index = int(err["param"].removeprefix("messages[").removesuffix("]"))  # first refused
                blocked.append(batch[index - 1])
                batch = batch[index:]  # re-send the rest to find every refused turn
    assert blocked == []
