"""Automated key rotation (`KeyRotation`): due credentials get a new key from their source, the
key is checked live before it replaces the old one, the old one stays valid for the overlap
window and is then dropped (and deleted upstream), and a failure keeps the old key and raises
the alarm (record, event, metric, webhook) without a key ever showing."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.config.schema_ops import RotationSourceConfig
from gatewise.errors import (
    AuthenticationError,
    ConfigError,
    CredentialRotationError,
    NotConfiguredError,
)
from gatewise.observability.metrics import GatewayMetrics
from gatewise.pipeline.core import Call
from gatewise.security.audit import AuditLog
from gatewise.security.credentials import CredentialMiddleware, CredentialVault
from gatewise.security.crypto import SecretBox, generate_key
from gatewise.security.rotation import KeyRotation, KeyVerificationError
from gatewise.security.rotation_sources import NewKey, RotationSourceError
from gatewise.storage.memory_governance import MemoryGovernance
from gatewise.transport.base import HttpRequest, HttpResponse
from tests.unit.security.conftest import Clock, Events

OLD = "sk-old-CANARY-0000000000000001"
NEW = "sk-new-CANARY-1111111111111111"
NEWER = "sk-newer-CANARY-22222222222222"
DAY = 86400.0
NAME = "openai-main"


class ScriptedSource:
    """Hands out the scripted keys (or raises the scripted errors) in order."""

    kind = "scripted"

    def __init__(self, *answers: NewKey | Exception, failing_deletes: int = 0) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.deleted: list[str] = []
        self.failing_deletes = failing_deletes

    async def new_key(self, credential: str) -> NewKey:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def delete_key(self, key_id: str) -> None:
        if self.failing_deletes:
            self.failing_deletes -= 1
            raise RotationSourceError("admin API answered HTTP 503")
        self.deleted.append(key_id)


class Verifier:
    """The live check: refuses the keys in `refuse`, the way a provider answers 401."""

    def __init__(self, *refuse: str) -> None:
        self.refuse = set(refuse)
        self.seen: list[str] = []

    async def __call__(self, credential: str, secret: str) -> None:
        self.seen.append(secret)
        if secret in self.refuse:
            raise KeyVerificationError("live check on gpt:openai/gpt-4o-mini refused the new "
                                       "key (AuthenticationError, HTTP 401)")


class AlertSink:
    """A transport that records what the alert webhook would receive."""

    def __init__(self) -> None:
        self.sent: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        return HttpResponse(204, {}, b"")

    async def open_stream(self, request: HttpRequest) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


@pytest.fixture
def gov() -> MemoryGovernance:
    return MemoryGovernance()


@pytest.fixture
def vault(gov: MemoryGovernance, clock: Clock, events: Events) -> CredentialVault:
    box = SecretBox.from_key_material(generate_key())
    return CredentialVault(gov, box, AuditLog(gov, clock=clock), events, clock=clock)


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics()


@pytest.fixture
def alerts() -> AlertSink:
    return AlertSink()


def _rotation(vault: CredentialVault, source: ScriptedSource, verify: Verifier, clock: Clock,
              metrics: GatewayMetrics, alerts: AlertSink, **cfg: Any) -> KeyRotation:
    config = RotationSourceConfig(source="command", command=["unused"],
                                  **{"every_days": 90, "overlap_s": 3600.0,
                                     "alert_webhook": "http://alerts.test/hook", **cfg})
    return KeyRotation(lambda: vault, {NAME: config}, {NAME: source}, verify, metrics=metrics,
                       transport=alerts, clock=clock)


async def test_a_credential_that_is_not_due_is_left_alone(
        vault: CredentialVault, clock: Clock, metrics: GatewayMetrics, alerts: AlertSink) -> None:
    await vault.put(NAME, "openai", OLD, actor="master")
    source = ScriptedSource(NewKey(NEW))
    job = _rotation(vault, source, Verifier(), clock, metrics, alerts)
    clock.now += 89 * DAY
    summary = await job.run()
    assert summary["rotated"] == [] and summary["not_due"] == 1
    assert source.calls == 0 and await vault.get(NAME) == OLD
    assert metrics.key_rotations.get((NAME, "ok")) == 0 and alerts.sent == []


async def test_a_due_credential_is_rotated_after_a_live_check_of_the_new_key(
        vault: CredentialVault, gov: MemoryGovernance, clock: Clock,
        metrics: GatewayMetrics, alerts: AlertSink) -> None:
    await vault.put(NAME, "openai", OLD, actor="master")
    verify = Verifier()
    job = _rotation(vault, ScriptedSource(NewKey(NEW, "svc_1")), verify, clock, metrics,
                    alerts)
    clock.now += 90 * DAY
    summary = await job.run()
    assert summary["rotated"] == [NAME]
    assert verify.seen == [NEW]  # checked before it was stored
    assert await vault.get(NAME) == NEW
    rec = await gov.get_credential(NAME)
    assert rec is not None and rec.rotated == clock.now and rec.key_id == "svc_1"
    assert rec.previous_until == clock.now + 3600 and rec.last_rotation_error is None
    assert metrics.key_rotations.get((NAME, "ok")) == 1
    metrics.render()
    assert metrics.credential_age.get((NAME,)) == 0
    clock.now += 2 * DAY
    assert f"gatewise_credential_age_seconds{{credential=\"openai-main\"}} {2 * DAY:g}" in (
        metrics.render())


async def test_a_key_that_fails_the_live_check_keeps_the_old_one_and_raises_the_alarm(
        vault: CredentialVault, gov: MemoryGovernance, clock: Clock, events: Events,
        metrics: GatewayMetrics, alerts: AlertSink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await vault.put(NAME, "openai", OLD, actor="master")
    source = ScriptedSource(NewKey(NEW, "svc_dead"))
    job = _rotation(vault, source, Verifier(NEW), clock, metrics, alerts)
    clock.now += 91 * DAY
    summary = await job.run()
    assert summary["failed"] == [NAME] and summary["rotated"] == []
    assert await vault.get(NAME) == OLD
    rec = await gov.get_credential(NAME)
    assert rec is not None and rec.previous_ciphertext is None and rec.key_id is None
    assert rec.last_rotation_error is not None and "refused the new key" in rec.last_rotation_error
    assert [(k, a) for k, a, _ in events.seen] == [("credential", "failed_rotation")]
    assert metrics.key_rotations.get((NAME, "failed")) == 1
    assert metrics.key_rotations.get((NAME, "ok")) == 0
    [alert] = alerts.sent
    assert alert.url == "http://alerts.test/hook"
    body = msgspec.json.decode(alert.body or b"")
    assert body["type"] == "gatewise.key_rotation_failed" and body["credential"] == NAME
    assert "refused the new key" in body["error"]
    # The key made upstream but refused is revoked, not left behind.
    assert source.deleted == ["svc_dead"]
    seen = caplog.text + repr(rec) + str(events.seen) + str(alert.body) + str(summary)
    assert OLD not in seen and NEW not in seen
    assert any(r.levelno == logging.WARNING for r in caplog.records)


async def test_a_source_error_is_a_failed_rotation_too(
        vault: CredentialVault, clock: Clock, metrics: GatewayMetrics, alerts: AlertSink) -> None:
    await vault.put(NAME, "openai", OLD, actor="master")
    job = _rotation(vault, ScriptedSource(RotationSourceError("command exited with status 3 "
                                                              "(stderr: 40 bytes)")),
                    Verifier(), clock, metrics, alerts)
    with pytest.raises(CredentialRotationError) as caught:
        await job.rotate_now(NAME, actor="master")
    assert OLD not in str(caught.value) and await vault.get(NAME) == OLD
    assert metrics.key_rotations.get((NAME, "failed")) == 1 and len(alerts.sent) == 1


@pytest.mark.parametrize("bad", ["", "short", "sk-with a space-in-the-middle",
                                 "sk-two\nlines-0000000000", OLD])
async def test_a_key_of_the_wrong_shape_or_the_current_key_is_refused(
        bad: str, vault: CredentialVault, clock: Clock, metrics: GatewayMetrics,
        alerts: AlertSink) -> None:
    await vault.put(NAME, "openai", OLD, actor="master")
    verify = Verifier()
    job = _rotation(vault, ScriptedSource(NewKey(bad)), verify, clock, metrics, alerts)
    with pytest.raises(CredentialRotationError):
        await job.rotate_now(NAME, actor="master")
    assert verify.seen == [] and await vault.get(NAME) == OLD


async def test_the_old_key_works_during_the_overlap_and_is_deleted_after_it(
        vault: CredentialVault, gov: MemoryGovernance, clock: Clock,
        metrics: GatewayMetrics, alerts: AlertSink) -> None:
    await vault.put(NAME, "openai", OLD, actor="master")
    source = ScriptedSource(NewKey(NEW, "svc_1"), NewKey(NEWER, "svc_2"))
    job = _rotation(vault, source, Verifier(), clock, metrics, alerts, overlap_s=600.0)
    await job.rotate_now(NAME, actor="master")
    # The first rotation replaced a key the source did not make: nothing to delete upstream.
    assert await vault.previous(NAME) == OLD
    clock.now += 599
    assert (await job.run())["expired"] == [] and await vault.previous(NAME) == OLD
    clock.now += 1
    assert await vault.previous(NAME) is None
    assert (await job.run())["expired"] == [NAME]
    rec = await gov.get_credential(NAME)
    assert rec is not None and rec.previous_ciphertext is None and rec.previous_until is None
    # The next rotation's overlap ends with the source deleting the key it made before.
    await job.rotate_now(NAME, actor="master")
    assert await vault.previous(NAME) == NEW and source.deleted == []
    clock.now += 600
    await job.run()
    assert source.deleted == ["svc_1"] and await vault.get(NAME) == NEWER


async def test_a_failed_upstream_delete_is_tried_again_on_the_next_run(
        vault: CredentialVault, clock: Clock, metrics: GatewayMetrics, alerts: AlertSink) -> None:
    await vault.put(NAME, "openai", OLD, actor="master")
    source = ScriptedSource(NewKey(NEW, "svc_1"), NewKey(NEWER, "svc_2"), failing_deletes=1)
    job = _rotation(vault, source, Verifier(), clock, metrics, alerts, overlap_s=60.0)
    await job.rotate_now(NAME, actor="master")
    await job.rotate_now(NAME, actor="master")  # ends OLD's window: nothing to delete
    clock.now += 60
    assert (await job.run())["expired"] == [] and source.deleted == []
    assert (await job.run())["expired"] == [NAME] and source.deleted == ["svc_1"]


async def test_rotating_again_within_the_overlap_ends_the_older_window_first(
        vault: CredentialVault, clock: Clock, metrics: GatewayMetrics, alerts: AlertSink) -> None:
    await vault.put(NAME, "openai", OLD, actor="master")
    source = ScriptedSource(NewKey(NEW, "svc_1"), NewKey(NEWER, "svc_2"))
    job = _rotation(vault, source, Verifier(), clock, metrics, alerts)
    await job.rotate_now(NAME, actor="master")
    await job.rotate_now(NAME, actor="master")
    assert await vault.previous(NAME) == NEW and await vault.get(NAME) == NEWER
    assert source.deleted == []  # svc_1 holds NEW, still in its own window


async def test_without_an_overlap_the_old_key_is_deleted_at_once(
        vault: CredentialVault, clock: Clock, metrics: GatewayMetrics, alerts: AlertSink) -> None:
    await vault.put(NAME, "openai", OLD, actor="master")
    source = ScriptedSource(NewKey(NEW, "svc_1"), NewKey(NEWER, "svc_2"))
    job = _rotation(vault, source, Verifier(), clock, metrics, alerts, overlap_s=0.0)
    await job.rotate_now(NAME, actor="master")
    await job.rotate_now(NAME, actor="master")
    assert source.deleted == ["svc_1"] and await vault.previous(NAME) is None


async def test_rotate_now_needs_a_configured_source(
        vault: CredentialVault, clock: Clock, metrics: GatewayMetrics, alerts: AlertSink) -> None:
    await vault.put("other", "openai", OLD, actor="master")
    job = _rotation(vault, ScriptedSource(), Verifier(), clock, metrics, alerts)
    with pytest.raises(NotConfiguredError, match=r"security\.rotation\.other"):
        await job.rotate_now("other", actor="master")


async def test_a_refused_new_key_falls_back_to_the_previous_one_during_the_overlap(
        vault: CredentialVault, clock: Clock, metrics: GatewayMetrics, alerts: AlertSink) -> None:
    from gatewise.providers.base import Target
    from gatewise.providers.deployment import Deployment
    from gatewise.types.validation import chat_request_from_dict

    await vault.put(NAME, "openai", OLD, actor="master")
    await _rotation(vault, ScriptedSource(NewKey(NEW)), Verifier(), clock, metrics,
                    alerts).rotate_now(NAME, actor="master")
    dep = Deployment("gpt", "gpt:openai/x", Target("openai", "openai", "x"), credential=NAME)
    call = Call("chat", chat_request_from_dict({"model": "gpt", "messages": [
        {"role": "user", "content": "hi"}]}))
    call.deployment = dep
    used: list[str | None] = []

    async def upstream(c: Call) -> str:
        used.append(c.deployment.target.api_key if c.deployment else None)
        if c.deployment is not None and c.deployment.target.api_key == NEW:
            raise AuthenticationError("refused", provider="openai", model="x",
                                      upstream_status=401)
        return "answer"

    middleware = CredentialMiddleware(lambda: vault)
    assert await middleware(call, upstream) == "answer" and used == [NEW, OLD]
    clock.now += 3600  # the window is over: the refusal stands
    with pytest.raises(AuthenticationError):
        await middleware(call, upstream)


def _resolved(rotation: dict[str, Any], api_key: str = "vault:openai-main") -> Any:
    cfg, warnings = parse_config({
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_key": api_key,
                            "api_base": "http://127.0.0.1:9/v1"}]},
        "security": {"encryption_key": generate_key(), "rotation": rotation}})
    return resolve_config(cfg, None, {"ADMIN": "sk-admin-from-env"}, warnings)


@pytest.mark.parametrize(("entry", "path"), [
    ({"source": "command"}, "security.rotation.openai-main.command"),
    ({"source": "webhook"}, "security.rotation.openai-main.url"),
    ({"source": "openai_admin", "project_id": "proj_1"},
     "security.rotation.openai-main.admin_key"),
    ({"source": "openai_admin", "admin_key": "env:ADMIN"},
     "security.rotation.openai-main.project_id"),
    ({"source": "command", "command": ["x"], "verify_deployment": "nope"},
     "security.rotation.openai-main.verify_deployment"),
])
def test_a_source_missing_what_it_needs_is_a_config_error_naming_the_key(
        entry: dict[str, Any], path: str) -> None:
    from gatewise.gateway import Gateway

    with pytest.raises(ConfigError) as caught:
        Gateway(_resolved({"openai-main": entry}))
    assert caught.value.path == path


def test_a_rotated_credential_no_deployment_uses_needs_a_verify_deployment() -> None:
    from gatewise.gateway import Gateway

    with pytest.raises(ConfigError, match="verify_deployment"):
        Gateway(_resolved({"unused": {"source": "command", "command": ["x"]}}))
    gw = Gateway(_resolved({"unused": {"source": "command", "command": ["x"],
                                       "verify_deployment": "gpt"}}))
    assert gw.key_rotation is not None and gw.security.rotation is gw.key_rotation
    assert gw.key_rotation.name == "key_rotation" and gw.key_rotation.default_interval_s == 3600
    # A maintenance job: run hourly by one replica at a time.
    assert gw.maintenance.interval("key_rotation") == 3600
