"""Provider keys kept in the credential vault: stored through the admin API (encrypted with
AES-GCM, never shown again), used by a deployment whose `api_key` is `vault:<name>`, rotated
without a restart, and monitored (use counts, rotation due)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gatewise.security.crypto import generate_key
from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

MASTER = "sk-vault-master"
FIRST = "sk-proj-first-provider-key-000000000000"
SECOND = "sk-proj-second-provider-key-11111111111"


@pytest.fixture
def setup(openai_fake: FakeServer, tmp_path: Path) -> Iterator[tuple[GatewayServer, Path]]:
    cfg = {
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": openai_fake.url + "/v1",
                            "api_key": "vault:openai-main"}]},
        "server": {"master_key": MASTER, "warmup": False},
        "storage": {"state_dir": str(tmp_path)},
        "security": {"encryption_key": generate_key()},
        "router": {"retry": {"max_retries": 0}},
    }
    with GatewayServer(cfg) as srv:
        yield srv, tmp_path


def _auth_headers_seen(fake: FakeServer, since: int) -> list[str]:
    return [r.headers.get("Authorization", "") for r in fake.requests[since:]]


def test_a_vault_key_is_used_rotated_and_monitored(
        setup: tuple[GatewayServer, Path], openai_fake: FakeServer) -> None:
    srv, state = setup
    admin = {"authorization": f"Bearer {MASTER}"}
    made = httpx.post(f"{srv.url}/admin/credentials", headers=admin,
                      json={"name": "openai-main", "provider": "openai", "secret": FIRST})
    assert made.status_code == 201 and FIRST not in made.text
    # At rest: ciphertext only.
    with sqlite3.connect(state / "gatewise.db") as db:
        dump = "\n".join(db.iterdump())
    assert FIRST not in dump

    def chat() -> int:
        return httpx.post(f"{srv.url}/v1/chat/completions", headers=admin, timeout=30, json={
            "model": "gpt", "messages": [{"role": "user", "content": "hi"}]}).status_code

    since = len(openai_fake.requests)
    assert chat() == 200 and chat() == 200
    assert _auth_headers_seen(openai_fake, since) == [f"Bearer {FIRST}"] * 2
    rotated = httpx.post(f"{srv.url}/admin/credentials/openai-main/rotate", headers=admin,
                         json={"secret": SECOND})
    assert rotated.status_code == 200 and SECOND not in rotated.text
    since = len(openai_fake.requests)
    assert chat() == 200
    assert _auth_headers_seen(openai_fake, since) == [f"Bearer {SECOND}"]
    listed = httpx.get(f"{srv.url}/admin/credentials", headers=admin).json()["data"]
    assert listed[0]["name"] == "openai-main" and listed[0]["uses"] == 3
    assert listed[0]["rotation_due"] is False and "ciphertext" not in listed[0]
    audit = httpx.get(f"{srv.url}/admin/audit", headers=admin).json()["data"]
    assert [a["action"] for a in audit if a["action"].startswith("credential.")] == [
        "credential.put", "credential.rotate"]
    text = str(listed) + str(audit)
    assert FIRST not in text and SECOND not in text


def test_a_vault_reference_without_an_encryption_key_is_a_config_error(
        openai_fake: FakeServer, tmp_path: Path) -> None:
    from gatewise.errors import ConfigError

    cfg = {"models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": openai_fake.url,
                               "api_key": "vault:x"}]},
           "storage": {"state_dir": str(tmp_path)}}
    with pytest.raises(ConfigError, match="encryption_key"):
        GatewayServer(cfg)
