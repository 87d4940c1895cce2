"""Automated provider-key rotation over real HTTP: OpenAI's admin API (a fake speaking its wire
format) makes the new key, the provider's model list checks it before it is stored, the old
key keeps working through the overlap window and is deleted upstream after it; a webhook and
a command are sources too; a failed rotation keeps the old key and posts an alert; the admin
API rotates on demand. No key ever appears in a log record, an error or an alert."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from gatewise.config.loader import parse_config, resolve_config
from gatewise.gateway import Gateway
from gatewise.observability.metrics import GatewayMetrics
from gatewise.providers.pool import ProviderPool
from gatewise.security.audit import AuditLog
from gatewise.security.credentials import CredentialVault
from gatewise.security.crypto import SecretBox, generate_key
from gatewise.security.rotation import DeploymentVerifier, KeyRotation
from gatewise.security.rotation_sources import build_source
from gatewise.storage.memory_governance import MemoryGovernance
from tests.fakes.gateway import GatewayServer
from tests.fakes.openai_admin_fake import AdminState
from tests.fakes.server import FakeServer

ADMIN_KEY = "sk-admin-CANARY-000000000000000"
FIRST = "sk-proj-first-CANARY-1111111111"
HOOK_KEY = "sk-from-webhook-CANARY-22222222"
CMD_KEY = "sk-from-command-CANARY-33333333"
HOOK_TOKEN = "hook-token-CANARY-4444"
DAY = 86400.0
NAME = "openai-main"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    def emit(self, kind: str, action: str, **kw: Any) -> None:
        self.seen.append((kind, action, kw.get("detail") or {}))


@pytest.fixture
def admin_api() -> Iterator[tuple[AdminState, FakeServer]]:
    state = AdminState(admin_key=ADMIN_KEY, initial_keys={FIRST, HOOK_KEY, CMD_KEY})
    with FakeServer(state.make_app) as srv:
        yield state, srv


def _alerts_app(srv: FakeServer) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app


def _key_webhook_app(srv: FakeServer) -> web.Application:
    async def rotate(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {HOOK_TOKEN}":
            return web.json_response({"error": "unauthorised"}, status=401)
        return web.json_response({"key": HOOK_KEY})

    app = web.Application()
    app.router.add_post("/rotate", rotate)
    return app


@pytest.fixture
def alerts() -> Iterator[FakeServer]:
    with FakeServer(_alerts_app) as srv:
        yield srv


def _config(api: FakeServer, rotation: dict[str, Any], tmp_path: Path | None = None) -> Any:
    data: dict[str, Any] = {
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": api.url + "/v1",
                            "api_key": f"vault:{NAME}"}]},
        "security": {"encryption_key": generate_key(), "rotation": {NAME: rotation}},
        "router": {"retry": {"max_retries": 0}},
    }
    if tmp_path is not None:
        data["storage"] = {"state_dir": str(tmp_path)}
        data["server"] = {"master_key": "sk-master-rotation", "warmup": False}
    cfg, warnings = parse_config(data)
    return resolve_config(cfg, None, {"ADMIN_KEY": ADMIN_KEY,
                                      "HOOK_AUTH": f"Bearer {HOOK_TOKEN}"}, warnings)


class Rig:
    """The job as the gateway builds it, but on an injected clock (vault and job alike)."""

    def __init__(self, resolved: Any, clock: Clock) -> None:
        from gatewise.config.secrets import resolve_secret

        self.gov = MemoryGovernance()
        self.events = Events()
        self.metrics = GatewayMetrics()
        self.pool = ProviderPool()
        self.vault = CredentialVault(self.gov, SecretBox.from_key_material(generate_key()),
                                     AuditLog(self.gov, clock=clock), self.events, clock=clock)
        rotations = resolved.config.security.rotation

        def secret(value: str | None, path: str) -> str | None:
            return resolve_secret(value, env=resolved.env, file=None, path=path)

        sources = {n: build_source(n, c, transport=self.pool.transport, secret=secret,
                                   clock=clock) for n, c in rotations.items()}
        dep = resolved.aliases["gpt"][0]
        self.job = KeyRotation(lambda: self.vault, dict(rotations), sources,
                               DeploymentVerifier(self.pool, {NAME: dep}, {NAME: 10.0}),
                               metrics=self.metrics, transport=self.pool.transport,
                               clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _works(api: FakeServer, key: str) -> bool:
    resp = httpx.get(f"{api.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    return resp.status_code == 200


def _no_canary(caplog: pytest.LogCaptureFixture, *more: Any, keys: list[str]) -> None:
    seen = caplog.text + str([r.__dict__ for r in caplog.records]) + str(more)
    for key in keys:
        assert key not in seen


async def test_openai_admin_rotation_overlaps_then_deletes_the_old_key(
        admin_api: tuple[AdminState, FakeServer], alerts: FakeServer, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    state, api = admin_api
    rig = Rig(_config(api, {"source": "openai_admin", "api_base": api.url + "/v1",
                            "admin_key": "env:ADMIN_KEY", "project_id": state.project_id,
                            "overlap_s": 600, "alert_webhook": alerts.url + "/hook"}), clock)
    try:
        await rig.vault.put(NAME, "openai", FIRST, actor="master")
        clock.now += 30 * DAY
        assert (await rig.job.run())["not_due"] == 1 and state.accounts == {}

        clock.now += 60 * DAY
        assert (await rig.job.run())["rotated"] == [NAME]
        [(first_account, first_key)] = state.accounts.items()
        assert await rig.vault.get(NAME) == first_key
        # The live check ran with the new key before it was stored.
        checks = [r for r in api.requests if r.path == "/v1/models"]
        assert checks[-1].headers["Authorization"] == f"Bearer {first_key}"
        created = [r for r in api.requests if r.method == "POST"][-1]
        assert created.headers["Authorization"] == f"Bearer {ADMIN_KEY}"

        clock.now += 90 * DAY
        assert (await rig.job.run())["rotated"] == [NAME]
        second_key = state.accounts[max(state.accounts)]
        assert await rig.vault.get(NAME) == second_key != first_key
        # Within the overlap window the replaced key still works upstream.
        clock.now += 599
        await rig.job.run()
        assert _works(api, first_key) and await rig.vault.previous(NAME) == first_key
        assert state.deleted == []
        # After it, the job deletes it through the admin API, and it stops working.
        clock.now += 1
        assert (await rig.job.run())["expired"] == [NAME]
        assert state.deleted == [first_account] and not _works(api, first_key)
        assert _works(api, second_key) and await rig.vault.previous(NAME) is None
        assert rig.metrics.key_rotations.get((NAME, "ok")) == 2
        assert [r for r in alerts.requests if r.path == "/hook"] == []
        rec = await rig.gov.get_credential(NAME)
        _no_canary(caplog, rec, rig.events.seen, rig.metrics.render(),
                   keys=[FIRST, first_key, second_key, ADMIN_KEY])
    finally:
        await rig.pool.aclose()


async def test_a_key_the_provider_refuses_is_not_stored_and_raises_the_alarm(
        admin_api: tuple[AdminState, FakeServer], alerts: FakeServer, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    state, api = admin_api
    state.hand_out_dead_keys = True
    rig = Rig(_config(api, {"source": "openai_admin", "api_base": api.url + "/v1",
                            "admin_key": "env:ADMIN_KEY", "project_id": state.project_id,
                            "alert_webhook": alerts.url + "/hook"}), clock)
    try:
        await rig.vault.put(NAME, "openai", FIRST, actor="master")
        clock.now += 91 * DAY
        assert (await rig.job.run())["failed"] == [NAME]
        refused = [r for r in api.requests if r.path == "/v1/models"][-1]
        dead_key = refused.headers["Authorization"][7:]
        assert dead_key != FIRST
        assert await rig.vault.get(NAME) == FIRST and _works(api, FIRST)
        rec = await rig.gov.get_credential(NAME)
        assert rec is not None and rec.last_rotation_error is not None
        assert "AuthenticationError, HTTP 401" in rec.last_rotation_error
        assert [(k, a) for k, a, _ in rig.events.seen] == [("credential", "failed_rotation")]
        assert rig.metrics.key_rotations.get((NAME, "failed")) == 1
        [alert] = [r for r in alerts.requests if r.path == "/hook"]
        body = alert.json()
        assert body["type"] == "gatewise.key_rotation_failed" and body["credential"] == NAME
        assert body["source"] == "openai_admin" and "HTTP 401" in body["error"]
        # Slack's incoming webhooks require `text`: one line for people, no key, no error.
        assert body["text"] == (f"gatewise: rotating credential {NAME} (openai, openai_admin) "
                                "failed; the old key stays in use")
        # The refused key was made upstream: the job asked to delete its account at once.
        assert [r.method for r in api.requests if "/service_accounts/" in r.path] == ["DELETE"]
        _no_canary(caplog, rec, rig.events.seen, alert.body,
                   keys=[FIRST, dead_key, dead_key[-4:] + ".", ADMIN_KEY])
    finally:
        await rig.pool.aclose()


async def test_a_webhook_source_is_posted_with_its_secret_headers(
        admin_api: tuple[AdminState, FakeServer], clock: Clock) -> None:
    _, api = admin_api
    with FakeServer(_key_webhook_app) as hook:
        rig = Rig(_config(api, {"source": "webhook", "url": hook.url + "/rotate",
                                "headers": {"Authorization": "env:HOOK_AUTH"}}), clock)
        try:
            await rig.vault.put(NAME, "openai", FIRST, actor="master")
            await rig.job.rotate_now(NAME, actor="master")
            assert await rig.vault.get(NAME) == HOOK_KEY
            [asked] = hook.requests
            assert asked.json() == {"credential": NAME}
            assert asked.headers["Authorization"] == f"Bearer {HOOK_TOKEN}"
        finally:
            await rig.pool.aclose()


def test_the_admin_api_rotates_now_from_the_configured_command(
        admin_api: tuple[AdminState, FakeServer], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, api = admin_api
    resolved = _config(api, {"source": "command",
                             "command": [sys.executable, "-c", f"print({CMD_KEY!r})"]},
                       tmp_path)
    admin = {"authorization": "Bearer sk-master-rotation"}
    with GatewayServer(gateway=Gateway(resolved)) as srv:
        made = httpx.post(f"{srv.url}/admin/credentials", headers=admin,
                          json={"name": NAME, "provider": "openai", "secret": FIRST})
        assert made.status_code == 201
        rotated = httpx.post(f"{srv.url}/admin/credentials/{NAME}/rotate", headers=admin,
                             timeout=30)
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["name"] == NAME and "previous_ciphertext" not in rotated.json()
        assert rotated.json()["previous_until"] > rotated.json()["rotated"]
        since = len(api.requests)
        chat = httpx.post(f"{srv.url}/v1/chat/completions", headers=admin, timeout=30, json={
            "model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200
        assert [r.headers["Authorization"] for r in api.requests[since:]] == [
            f"Bearer {CMD_KEY}"]
        metrics = httpx.get(f"{srv.url}/metrics", headers=admin).text
        assert 'gatewise_key_rotations_total{credential="openai-main",outcome="ok"} 1' in metrics
        # No source for another credential: 409; a bad key from the source: 502, old key kept.
        httpx.post(f"{srv.url}/admin/credentials", headers=admin,
                   json={"name": "other", "provider": "openai", "secret": FIRST})
        refused = httpx.post(f"{srv.url}/admin/credentials/other/rotate", headers=admin)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_configured"
        listed = httpx.get(f"{srv.url}/admin/credentials", headers=admin).text
        everything = made.text + rotated.text + chat.text + metrics + refused.text + listed
    _no_canary(caplog, everything, keys=[FIRST, CMD_KEY])


def test_a_failed_rotation_through_the_admin_api_is_a_502_and_keeps_the_old_key(
        admin_api: tuple[AdminState, FakeServer], tmp_path: Path) -> None:
    state, api = admin_api
    state.initial_keys.discard(CMD_KEY)  # the provider refuses what the command prints
    resolved = _config(api, {"source": "command",
                             "command": [sys.executable, "-c", f"print({CMD_KEY!r})"]},
                       tmp_path)
    admin = {"authorization": "Bearer sk-master-rotation"}
    with GatewayServer(gateway=Gateway(resolved)) as srv:
        httpx.post(f"{srv.url}/admin/credentials", headers=admin,
                   json={"name": NAME, "provider": "openai", "secret": FIRST})
        failed = httpx.post(f"{srv.url}/admin/credentials/{NAME}/rotate", headers=admin,
                            json={}, timeout=30)
        assert failed.status_code == 502
        assert failed.json()["error"]["code"] == "credential_rotation_failed"
        since = len(api.requests)
        chat = httpx.post(f"{srv.url}/v1/chat/completions", headers=admin, timeout=30, json={
            "model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200
        assert api.requests[since].headers["Authorization"] == f"Bearer {FIRST}"
        [row] = httpx.get(f"{srv.url}/admin/credentials", headers=admin).json()["data"]
        assert "refused the new key" in row["last_rotation_error"]
        metrics = httpx.get(f"{srv.url}/metrics", headers=admin).text
        assert 'outcome="failed"} 1' in metrics
        for text in (failed.text, str(row), metrics):
            assert CMD_KEY not in text and FIRST not in text
