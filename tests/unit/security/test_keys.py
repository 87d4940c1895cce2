"""Virtual keys: format, hashing, authentication with a per-replica cache, lifecycle, teams."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time

import pytest

from gatewise.errors import InvalidRequestError, UnauthorizedError
from gatewise.security.audit import AuditLog
from gatewise.security.keys import KeyManager, KeyNotFoundError, parse_key
from gatewise.security.teams import TeamManager
from gatewise.storage.base import KeyRecord
from gatewise.storage.memory_governance import MemoryGovernance
from tests.unit.security.conftest import Clock, CountingStore, Events


def secret_of(token: str) -> str:
    parsed = parse_key(token)
    assert parsed is not None
    return parsed[1]


async def test_a_created_key_has_the_documented_format_and_only_its_hash_is_stored(
        keys: KeyManager, store: CountingStore) -> None:
    token, rec = await keys.create(name="ci", role="member", actor="master")
    m = re.fullmatch(r"sk-gw-([0-9a-f]{12})-([A-Za-z0-9_-]+)", token)
    assert m is not None and m[1] == rec.id and len(m[2]) >= 32
    stored = await store.get_key(rec.id)
    assert stored is not None
    assert stored.secret_hash == hashlib.sha256(m[2].encode()).hexdigest()
    assert m[2] not in repr(stored)


async def test_authenticate_builds_the_identity_from_the_key_and_its_team(
        keys: KeyManager, store: CountingStore, audit: AuditLog, clock: Clock) -> None:
    await TeamManager(store, audit, clock=clock).create("ml", models=["gpt-*"], rpm=600, tpm=9000,
                                                        actor="master")
    token, rec = await keys.create(name="svc", role="member", team="ml", user="ada",
                                   models=["gpt-4o-mini"], permissions=["llm:train"], rpm=60,
                                   tpm=1000, actor="master")
    ident = await keys.authenticate(token)
    assert (ident.tenant, ident.team, ident.user, ident.key_id, ident.role) == \
        ("ml", "ml", "ada", rec.id, "member")
    assert ident.models == ("gpt-4o-mini",) and ident.team_models == ("gpt-*",)
    assert (ident.rpm, ident.tpm, ident.team_rpm, ident.team_tpm) == (60, 1000, 600, 9000)
    assert ident.can("llm:generate") and ident.can("llm:train")
    assert not ident.can("keys:manage")


async def test_a_teamless_key_gets_the_default_tenant(keys: KeyManager) -> None:
    token, _ = await keys.create(name="x", role="viewer", actor="master")
    ident = await keys.authenticate(token)
    assert ident.tenant == "default" and ident.team is None and ident.can("usage:read")
    assert not ident.can("llm:generate")


@pytest.mark.parametrize("bad", [
    "", "sk-gw-", "sk-abc", "Bearer sk-gw-0123456789ab-" + "a" * 40,
    "sk-gw-0123456789AB-" + "a" * 40,       # id must be lowercase hex
    "sk-gw-0123456789ab-" + "a" * 10,       # secret too short
    "sk-gw-0123456789ab-" + "a" * 39 + "!",  # not url-safe
])
async def test_malformed_tokens_are_rejected_without_a_store_read(
        keys: KeyManager, store: CountingStore, bad: str) -> None:
    with pytest.raises(UnauthorizedError) as err:
        await keys.authenticate(bad)
    assert store.key_reads == 0
    if bad:
        assert bad not in str(err.value)


async def test_a_wrong_secret_is_rejected_and_the_message_does_not_echo_the_token(
        keys: KeyManager, events: Events) -> None:
    _, rec = await keys.create(name="x", role="member", actor="master")
    forged = f"sk-gw-{rec.id}-{'A' * 43}"
    with pytest.raises(UnauthorizedError) as err:
        await keys.authenticate(forged)
    assert str(err.value) == "invalid API key"
    assert events.seen[-1][:2] == ("auth", "deny") and events.seen[-1][2]["reason"] == "invalid"
    # an unknown id answers exactly the same way (existence is not revealed)
    with pytest.raises(UnauthorizedError) as err2:
        await keys.authenticate(f"sk-gw-{'f' * 12}-{'A' * 43}")
    assert str(err2.value) == str(err.value)


async def test_cached_authentication_reads_the_store_once_per_cache_period(
        keys: KeyManager, store: CountingStore, clock: Clock) -> None:
    token, _ = await keys.create(name="x", role="member", actor="master")
    store.key_reads = 0
    for _ in range(50):
        await keys.authenticate(token)
    assert store.key_reads == 1
    clock.now += 5.1
    await keys.authenticate(token)
    assert store.key_reads == 2


async def test_unknown_ids_are_cached_negatively_for_a_short_time(
        keys: KeyManager, store: CountingStore, clock: Clock) -> None:
    bogus = f"sk-gw-{'e' * 12}-{'B' * 43}"
    for _ in range(20):
        with pytest.raises(UnauthorizedError):
            await keys.authenticate(bogus)
    assert store.key_reads == 1
    clock.now += 1.1
    with pytest.raises(UnauthorizedError):
        await keys.authenticate(bogus)
    assert store.key_reads == 2


async def test_the_cache_stays_bounded_under_a_flood_of_bogus_ids(
        store: CountingStore, audit: AuditLog) -> None:
    km = KeyManager(store, audit, max_cached=100)
    for i in range(300):
        with pytest.raises(UnauthorizedError):
            await km.authenticate(f"sk-gw-{i:012x}-{'C' * 43}")
    assert len(km._cache) <= 100


async def test_revoking_takes_effect_at_once_on_the_same_replica(
        keys: KeyManager, store: CountingStore) -> None:
    token, rec = await keys.create(name="x", role="member", actor="master")
    await keys.authenticate(token)
    revoked = await keys.revoke(rec.id, actor="master")
    assert revoked.revoked is not None
    with pytest.raises(UnauthorizedError, match="revoked"):
        await keys.authenticate(token)
    assert [r.action for r in await store.audit()] == ["key.create", "key.revoke"]


async def test_without_broadcast_another_replica_sees_a_revocation_within_cache_s(
        store: CountingStore, audit: AuditLog, clock: Clock) -> None:
    a = KeyManager(store, audit, cache_s=5.0, clock=clock)
    b = KeyManager(store, audit, cache_s=5.0, clock=clock)
    token, rec = await a.create(name="x", role="member", actor="master")
    await b.authenticate(token)
    await a.revoke(rec.id, actor="master")
    await b.authenticate(token)  # still cached on B: staleness is bounded by cache_s
    clock.now += 5.01
    with pytest.raises(UnauthorizedError):
        await b.authenticate(token)


async def test_a_key_expires_on_time_even_while_cached(keys: KeyManager, clock: Clock) -> None:
    token, _ = await keys.create(name="x", role="member", expires=clock.now + 2, actor="master")
    await keys.authenticate(token)
    clock.now += 2
    with pytest.raises(UnauthorizedError, match="expired"):
        await keys.authenticate(token)


async def test_creating_an_already_expired_key_is_refused(keys: KeyManager, clock: Clock) -> None:
    with pytest.raises(InvalidRequestError):
        await keys.create(name="x", role="member", expires=clock.now - 1, actor="master")


async def test_create_validates_role_permissions_and_team(keys: KeyManager) -> None:
    with pytest.raises(InvalidRequestError, match="unknown role"):
        await keys.create(name="x", role="root", actor="master")
    with pytest.raises(InvalidRequestError, match="unknown permission"):
        await keys.create(name="x", role="member", permissions=["llm:generat"], actor="master")
    with pytest.raises(InvalidRequestError, match="does not exist"):
        await keys.create(name="x", role="member", team="ghost", actor="master")
    with pytest.raises(InvalidRequestError, match="needs a team"):
        await keys.create(name="x", role="team_admin", actor="master")


async def test_rotation_issues_a_new_key_and_keeps_the_old_one_for_the_overlap(
        keys: KeyManager, clock: Clock, store: CountingStore) -> None:
    old_token, old = await keys.create(name="svc", role="member", models=["m1"], rpm=5,
                                       actor="master")
    await keys.authenticate(old_token)
    new_token, new = await keys.rotate(old.id, actor="master", overlap_s=60)
    assert new.id != old.id and new_token != old_token
    assert (new.name, new.role, new.models, new.rpm) == ("svc", "member", ["m1"], 5)
    stored_old = await store.get_key(old.id)
    assert stored_old is not None and stored_old.rotated_to == new.id
    assert (await keys.authenticate(new_token)).key_id == new.id
    assert (await keys.authenticate(old_token)).key_id == old.id
    clock.now += 60
    with pytest.raises(UnauthorizedError, match="expired"):
        await keys.authenticate(old_token)
    assert (await keys.authenticate(new_token)).key_id == new.id
    with pytest.raises(InvalidRequestError):
        await keys.rotate(old.id, actor="master")
    audit = [r for r in await store.audit() if r.action == "key.rotate"]
    assert audit[0].target == old.id and audit[0].detail["new_key_id"] == new.id


async def test_update_changes_scope_immediately_and_rejects_unknown_fields(
        keys: KeyManager) -> None:
    token, rec = await keys.create(name="x", role="member", models=["a"], actor="master")
    assert (await keys.authenticate(token)).models == ("a",)
    await keys.update(rec.id, actor="master", models=("b", "c"), rpm=10)
    ident = await keys.authenticate(token)
    assert ident.models == ("b", "c") and ident.rpm == 10
    with pytest.raises(InvalidRequestError, match="secret_hash"):
        await keys.update(rec.id, actor="master", secret_hash="00")
    with pytest.raises(InvalidRequestError, match="unknown role"):
        await keys.update(rec.id, actor="master", role="god")
    with pytest.raises(KeyNotFoundError):
        await keys.revoke("000000000000", actor="master")


async def test_last_used_times_are_batched_and_flushed(keys: KeyManager, store: CountingStore,
                                                      clock: Clock) -> None:
    token, rec = await keys.create(name="x", role="member", actor="master")
    await keys.authenticate(token)
    clock.now += 3
    await keys.authenticate(token)
    assert (await store.get_key(rec.id)).last_used is None  # type: ignore[union-attr]
    assert await keys.flush_usage() == 1
    assert (await store.get_key(rec.id)).last_used == clock.now  # type: ignore[union-attr]
    assert await keys.flush_usage() == 0


async def test_a_store_read_that_races_an_invalidation_is_not_cached(
        audit: AuditLog, clock: Clock) -> None:
    gate = asyncio.Event()

    class SlowStore(MemoryGovernance):
        async def get_key(self, key_id: str) -> KeyRecord | None:
            rec = await super().get_key(key_id)
            await gate.wait()
            return rec

    slow = SlowStore()
    km = KeyManager(slow, AuditLog(slow, clock=clock), clock=clock)
    gate.set()
    token, rec = await km.create(name="x", role="member", actor="master")
    gate.clear()
    pending = asyncio.create_task(km.authenticate(token))
    await asyncio.sleep(0)
    km.invalidate(rec.id)  # e.g. a revocation broadcast arriving mid-read
    gate.set()
    await pending
    assert rec.id not in km._cache


async def test_the_master_key_authenticates_as_an_unrestricted_admin(
        store: CountingStore, audit: AuditLog) -> None:
    km = KeyManager(store, audit, master_key="sk-master-0123456789")
    ident = await km.authenticate("sk-master-0123456789")
    assert ident.permissions is None and ident.role == "admin" and ident.key_id == "master"
    with pytest.raises(UnauthorizedError):
        await km.authenticate("sk-master-012345678")


async def test_a_cached_authentication_costs_a_few_microseconds(keys: KeyManager) -> None:
    token, _ = await keys.create(name="x", role="member", actor="master")
    await keys.authenticate(token)
    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n):
        await keys.authenticate(token)
    per_call_us = (time.perf_counter() - t0) / n * 1e6
    print(f"cached authenticate: {per_call_us:.2f} µs/call")
    assert per_call_us < 50  # typically ~2 µs; the bound only catches a lost cache


async def test_canary_the_secret_appears_in_no_log_exception_or_audit_row(
        caplog: pytest.LogCaptureFixture, store: CountingStore, clock: Clock) -> None:
    from gatewise.security.events import LogEventSink

    caplog.set_level(logging.DEBUG)
    audit = AuditLog(store, clock=clock)
    km = KeyManager(store, audit, clock=clock, events=LogEventSink())
    token, rec = await km.create(name="canary", role="member", actor="master")
    secret = secret_of(token)
    texts: list[str] = []
    wrong = f"sk-gw-{rec.id}-{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    with pytest.raises(UnauthorizedError) as e1:
        await km.authenticate(wrong)
    texts += [str(e1.value), repr(e1.value), repr(e1.value.to_openai())]
    await km.authenticate(token)
    await km.revoke(rec.id, actor="master")
    with pytest.raises(UnauthorizedError) as e2:
        await km.authenticate(token)
    texts += [str(e2.value), repr(e2.value), repr(e2.value.to_openai())]
    await km.flush_usage()
    texts += [r.getMessage() + repr(r.__dict__) for r in caplog.records]
    texts += [repr(r) for r in await store.audit()]
    texts += [repr(k) for k in await store.list_keys()]
    assert caplog.records, "the denial should have been logged"
    for text in texts:
        assert secret not in text and token not in text and wrong not in text


# -- teams ------------------------------------------------------------------------------------

async def test_team_changes_are_audited_and_narrow_cached_identities_at_once(
        keys: KeyManager, store: CountingStore, audit: AuditLog, clock: Clock) -> None:
    teams = TeamManager(store, audit, keys=keys, clock=clock)
    await teams.create("ml", name="ML", models=["gpt-*"], actor="master")
    token, rec = await keys.create(name="x", role="member", team="ml", actor="master")
    assert (await keys.authenticate(token)).team_models == ("gpt-*",)
    await teams.update("ml", models=["claude-*"], rpm=5, actor="master")
    ident = await keys.authenticate(token)
    assert ident.team_models == ("claude-*",) and ident.team_rpm == 5
    assert [t.id for t in await teams.list()] == ["ml"]
    with pytest.raises(InvalidRequestError, match="live key"):
        await teams.delete("ml", actor="master")
    await keys.revoke(rec.id, actor="master")
    await teams.delete("ml", actor="master")
    assert await teams.list() == []
    actions = [r.action for r in await store.audit()]
    assert actions == ["team.create", "key.create", "team.update", "key.revoke", "team.delete"]


async def test_team_ids_are_validated_and_unique(store: CountingStore, audit: AuditLog) -> None:
    teams = TeamManager(store, audit)
    await teams.create("a-team", actor="master")
    with pytest.raises(InvalidRequestError, match="already exists"):
        await teams.create("a-team", actor="master")
    with pytest.raises(InvalidRequestError):
        await teams.create("Bad Team!", actor="master")


async def test_requests_for_an_expired_cache_entry_share_one_store_read(
        audit: AuditLog, clock: Clock) -> None:
    gate = asyncio.Event()

    class SlowStore(CountingStore):
        async def get_key(self, key_id: str) -> KeyRecord | None:
            rec = await super().get_key(key_id)
            await gate.wait()  # a database read takes a while
            return rec

    slow = SlowStore()
    km = KeyManager(slow, AuditLog(slow, clock=clock), clock=clock, cache_s=5.0)
    gate.set()
    token, _ = await km.create(name="x", role="member", actor="master")
    await km.authenticate(token)
    reads = slow.key_reads
    gate.clear()
    clock.now += 6.0  # the cached entry expired: 50 requests arrive before the read lands
    pending = asyncio.gather(*(km.authenticate(token) for _ in range(50)))
    for _ in range(3):
        await asyncio.sleep(0)
    gate.set()
    idents = await pending
    assert slow.key_reads == reads + 1
    assert len({i.key_id for i in idents}) == 1
