"""CredentialVault: provider keys encrypted at rest, counted, rotated on schedule, never leaked."""

from __future__ import annotations

import logging

import pytest

from gatewise.security.audit import AuditLog
from gatewise.security.credentials import (
    CredentialNotFoundError,
    CredentialRotationError,
    CredentialVault,
)
from gatewise.security.crypto import SecretBox, SecretBoxError, generate_key
from gatewise.storage.memory_governance import MemoryGovernance
from tests.unit.security.conftest import Clock, Events

SECRET = "sk-proj-REAL-provider-secret-0001"
DAY = 86400


@pytest.fixture
def gov() -> MemoryGovernance:
    return MemoryGovernance()


@pytest.fixture
def vault(gov: MemoryGovernance, clock: Clock, events: Events) -> CredentialVault:
    box = SecretBox.from_key_material(generate_key())
    return CredentialVault(gov, box, AuditLog(gov, clock=clock), events, rotation_days=30,
                           clock=clock)


async def test_a_credential_is_stored_encrypted_and_read_back(
        vault: CredentialVault, gov: MemoryGovernance) -> None:
    rec = await vault.put("openai-prod", "openai", SECRET, actor="master")
    assert SECRET.encode() not in rec.ciphertext and SECRET not in repr(rec)
    assert await vault.get("openai-prod") == SECRET
    stored = await gov.get_credential("openai-prod")
    assert stored is not None and stored.rotate_every_days == 30
    with pytest.raises(CredentialNotFoundError):
        await vault.get("nope")


async def test_a_ciphertext_moved_to_another_credential_fails_to_open(
        vault: CredentialVault, gov: MemoryGovernance) -> None:
    await vault.put("a", "openai", SECRET, actor="master")
    await vault.put("b", "openai", "other-secret", actor="master")
    a, b = await gov.get_credential("a"), await gov.get_credential("b")
    assert a is not None and b is not None
    b.ciphertext = a.ciphertext
    await gov.put_credential(b)
    with pytest.raises(SecretBoxError):
        await vault.get("b")


async def test_uses_are_counted_in_memory_and_flushed(vault: CredentialVault, clock: Clock,
                                                      gov: MemoryGovernance) -> None:
    await vault.put("a", "openai", SECRET, actor="master")
    for _ in range(3):
        await vault.get("a")
        clock.now += 1
    report = {r["name"]: r for r in await vault.usage_report()}
    assert report["a"]["uses"] == 3 and report["a"]["last_used"] == clock.now - 1
    assert (await gov.get_credential("a")).uses == 0  # type: ignore[union-attr]
    assert await vault.flush_usage() == 1
    stored = await gov.get_credential("a")
    assert stored is not None and stored.uses == 3 and stored.last_used == clock.now - 1
    assert (await vault.usage_report())[0]["uses"] == 3


async def test_rotation_with_a_new_secret_replaces_it_and_is_audited(
        vault: CredentialVault, gov: MemoryGovernance, clock: Clock) -> None:
    await vault.put("a", "openai", SECRET, actor="master")
    await vault.get("a")
    clock.now += 5
    rec = await vault.rotate("a", "sk-proj-NEW", actor="master")
    assert rec.rotated == clock.now
    assert await vault.get("a") == "sk-proj-NEW"
    assert [r.action for r in await gov.audit()] == ["credential.put", "credential.rotate"]


async def test_a_rotator_gets_the_current_secret_and_returns_the_next(
        vault: CredentialVault) -> None:
    await vault.put("a", "openai", SECRET, actor="master")
    seen: list[str] = []

    async def rotator(current: str) -> str:
        seen.append(current)
        return current + "-v2"

    await vault.rotate("a", rotator, actor="system")
    assert seen == [SECRET] and await vault.get("a") == SECRET + "-v2"


async def test_a_failed_rotation_is_recorded_alerted_and_audited_without_the_secret(
        vault: CredentialVault, gov: MemoryGovernance, events: Events,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await vault.put("a", "openai", SECRET, actor="master")

    async def rotator(current: str) -> str:
        raise RuntimeError(f"provider refused key {current}")

    with pytest.raises(CredentialRotationError) as err:
        await vault.rotate("a", rotator, actor="system")
    assert err.value.__cause__ is None and err.value.__suppress_context__
    rec = await gov.get_credential("a")
    assert rec is not None and rec.last_rotation_error is not None
    assert rec.last_rotation_error.startswith("RuntimeError: provider refused key [redacted]")
    assert await vault.get("a") == SECRET  # the old secret still works
    assert events.seen[-1][:2] == ("credential", "failed_rotation")
    audit = await gov.audit()
    assert audit[-1].action == "credential.rotation_failed"
    texts = [str(err.value), repr(events.seen), repr(audit), repr(rec),
             *(r.getMessage() + repr(r.__dict__) for r in caplog.records)]
    assert all(SECRET not in t for t in texts)
    await vault.rotate("a", "fresh", actor="master")
    assert (await gov.get_credential("a")).last_rotation_error is None  # type: ignore[union-attr]


async def test_due_and_check_rotation_follow_each_credentials_period(
        vault: CredentialVault, clock: Clock, events: Events) -> None:
    await vault.put("old", "openai", SECRET, actor="master")
    await vault.put("weekly", "anthropic", "x", rotate_every_days=7, actor="master")
    assert await vault.due() == []
    clock.now += 8 * DAY
    assert [r.name for r in await vault.due()] == ["weekly"]
    assert await vault.check_rotation() == ["weekly"]
    assert events.seen[-1][0:2] == ("credential", "rotation_due")
    assert events.seen[-1][2]["name"] == "weekly" and events.seen[-1][2]["age_days"] == 8.0
    clock.now += 23 * DAY
    assert [r.name for r in await vault.due()] == ["old", "weekly"]
    await vault.rotate("weekly", "y", actor="master")
    assert [r.name for r in await vault.due()] == ["old"]
    report = {r["name"]: r for r in await vault.usage_report()}
    assert report["old"]["rotation_due"] and not report["weekly"]["rotation_due"]
    assert all(SECRET not in repr(r) for r in report.values())


async def test_empty_secrets_are_refused(vault: CredentialVault) -> None:
    from gatewise.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError):
        await vault.put("a", "openai", "", actor="master")
    await vault.put("a", "openai", SECRET, actor="master")
    with pytest.raises(InvalidRequestError):
        await vault.rotate("a", "", actor="master")
