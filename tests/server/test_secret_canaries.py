"""Canary secrets: a provider key and a virtual key, used through every path that might leak
them (successes, upstream auth failures, bad keys, admin calls, logs at DEBUG), never appear in
logs, error bodies, response headers, metrics or audit rows."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

PROVIDER_CANARY = "sk-proj-CANARYprovider0123456789abcdef"
MASTER = "sk-master-CANARY-9f8e7d6c5b4a"


@pytest.fixture
def server(openai_fake: FakeServer, tmp_path: Path) -> Iterator[GatewayServer]:
    base = openai_fake.url + "/v1"
    cfg = {
        "models": {
            "good": [{"model": "openai/gpt-4o-mini", "api_base": base, "api_key": PROVIDER_CANARY}],
            "denied": [{"model": "openai/gpt-fail-401", "api_base": base,
                        "api_key": PROVIDER_CANARY}],
        },
        "server": {"master_key": MASTER, "warmup": False},
        "storage": {"state_dir": str(tmp_path / "state")},
        "router": {"retry": {"max_retries": 0}},
    }
    with GatewayServer(cfg) as srv:
        yield srv


def test_canary_keys_never_leak(server: GatewayServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = server.url
    admin = {"authorization": f"Bearer {MASTER}"}
    made = httpx.post(f"{url}/admin/keys", headers=admin, json={"name": "canary"}).json()
    vkey = made["key"]
    seen: list[str] = []

    def call(model: str, key: str, stream: bool = False) -> None:
        r = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": model, "stream": stream,
                             "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
        seen.append(r.text)
        seen.extend(f"{k}: {v}" for k, v in r.headers.items())

    call("good", vkey)
    call("good", vkey, stream=True)
    call("denied", vkey)                       # the upstream refuses the provider key
    call("good", vkey[:-3] + "xyz")            # a wrong secret for a real key id
    call("good", vkey.replace("sk-gw-", "sk-gw-0"))
    httpx.post(f"{url}/admin/keys/{made['id']}/revoke", headers=admin)
    call("good", vkey)                         # revoked
    seen.append(httpx.get(f"{url}/metrics", headers=admin).text)
    seen.append(httpx.get(f"{url}/admin/audit", headers=admin).text)
    seen.append(httpx.get(f"{url}/admin/keys", headers=admin).text)
    seen.append(httpx.get(f"{url}/admin/usage/records", headers=admin).text)
    seen.extend(r.getMessage() + " " + str(r.__dict__) for r in caplog.records)
    assert any("upstream" in s or "API key" in s for s in seen)  # the failures did happen
    secret_part = vkey.split("-", 3)[3]
    for text in seen:
        assert PROVIDER_CANARY not in text
        assert MASTER not in text
        assert vkey not in text and secret_part not in text
