"""`GovernanceStore` on every backend (memory, SQLite, PostgreSQL): the same behaviour, the
same ordering, and an audit chain that never forks, even with two replicas appending at once."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gatewise.storage.base import AuditEntry, BudgetRecord, CredentialRecord, KeyRecord, TeamRecord
from gatewise.storage.memory_governance import MemoryGovernance
from gatewise.storage.sqlite_governance import SQLiteGovernance
from tests.storage.conftest import backend_details

ZERO = "0" * 64


def chain(prev: str, seq: int, ts: float, actor: str, action: str, target: str | None,
          detail: dict[str, Any]) -> str:
    body = json.dumps([prev, seq, ts, actor, action, target, detail], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def _make(name: str, d: dict[str, Any]) -> Any:
    if name == "memory":
        return MemoryGovernance()
    if name == "sqlite":
        return SQLiteGovernance(d["path"] / "gatewise.db")
    from gatewise.storage.postgres_governance import PostgresGovernance

    return PostgresGovernance(d["url"], schema=d["schema"])


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def gov_backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


@pytest.fixture
async def gov(gov_backend: tuple[str, dict[str, Any]]) -> AsyncIterator[Any]:
    store = _make(*gov_backend)
    yield store
    await store.aclose()


@pytest.fixture
async def replicas(shared_backend: tuple[str, dict[str, Any]]) -> AsyncIterator[list[Any]]:
    """Two stores on one database, each with its own connection(s), as two replicas have."""
    stores = [_make(*shared_backend), _make(*shared_backend)]
    yield stores
    for s in stores:
        await s.aclose()


async def test_teams_round_trip_sorted_and_deleted(gov: Any) -> None:
    await gov.put_team(TeamRecord("t2", "Two", models=["gpt-4o"], rpm=10, metadata={"cc": "x"}))
    await gov.put_team(TeamRecord("t1", "One"))
    await gov.put_team(TeamRecord("t2", "Two renamed", tpm=500))
    assert [t.id for t in await gov.list_teams()] == ["t1", "t2"]
    t2 = await gov.get_team("t2")
    assert t2 == TeamRecord("t2", "Two renamed", tpm=500)
    assert await gov.delete_team("t2") is True and await gov.delete_team("t2") is False
    assert await gov.get_team("t2") is None


async def test_keys_replace_by_id_filter_by_team_and_sort_by_creation(gov: Any) -> None:
    k1 = KeyRecord("k1", "h1", "one", "member", team="red", created=3.0, models=["a"],
                   permissions=["chat"], metadata={"n": 1})
    await gov.put_key(k1)
    await gov.put_key(KeyRecord("k2", "h2", "two", "admin", created=1.0))
    await gov.put_key(KeyRecord("k3", "h3", "three", "viewer", team="red", created=2.0))
    assert [k.id for k in await gov.list_keys()] == ["k2", "k3", "k1"]
    assert [k.id for k in await gov.list_keys(team="red")] == ["k3", "k1"]
    assert await gov.get_key("k1") == k1
    k1.revoked, k1.rotated_to = 9.0, "k4"
    await gov.put_key(k1)
    got = await gov.get_key("k1")
    assert got is not None and got.revoked == 9.0 and got.rotated_to == "k4"
    assert await gov.get_key("nope") is None


async def test_touch_keys_only_moves_last_used_forward(gov: Any) -> None:
    await gov.put_key(KeyRecord("k1", "h", "n", "member"))
    await gov.put_key(KeyRecord("k2", "h", "n", "member"))
    await gov.touch_keys({"k1": 100.0, "k2": 50.0, "ghost": 1.0})
    await gov.touch_keys({"k1": 90.0})
    assert [k.last_used for k in await gov.list_keys()] == [100.0, 50.0]
    assert (await gov.get_key("k1")).last_used == 100.0  # type: ignore[union-attr]


async def test_budgets_filter_by_scope_and_subject(gov: Any) -> None:
    await gov.put_budget(BudgetRecord("b1", "team", "red", "month", limit_usd=10.0, created=1.0))
    await gov.put_budget(BudgetRecord("b2", "key", "k1", "day", limit_tokens=1000, hard=False,
                                      created=2.0))
    await gov.put_budget(BudgetRecord("b3", "team", "blue", "total", limit_usd=5.0, created=3.0))
    assert [b.id for b in await gov.list_budgets()] == ["b1", "b2", "b3"]
    assert [b.id for b in await gov.list_budgets(scope="team")] == ["b1", "b3"]
    assert await gov.list_budgets(scope="team", subject="blue") == [
        BudgetRecord("b3", "team", "blue", "total", limit_usd=5.0, created=3.0)]
    assert (await gov.list_budgets(subject="k1"))[0].hard is False
    assert await gov.delete_budget("b1") is True and await gov.delete_budget("b1") is False


async def test_credentials_keep_their_ciphertext_bytes(gov: Any) -> None:
    cred = CredentialRecord("openai-prod", "openai", b"\x00nonce\xffsealed", created=1.0,
                            rotated=2.0, uses=3, last_rotation_error="timeout")
    await gov.put_credential(cred)
    await gov.put_credential(CredentialRecord("anthropic", "anthropic", b"x", 1.0, 1.0))
    assert await gov.get_credential("openai-prod") == cred
    assert [c.name for c in await gov.list_credentials()] == ["anthropic", "openai-prod"]
    assert await gov.get_credential("nope") is None


async def test_credentials_keep_a_rotations_previous_key_and_key_ids(gov: Any) -> None:
    cred = CredentialRecord("openai-prod", "openai", b"\x01new", created=1.0, rotated=2.0,
                            previous_ciphertext=b"\x00old\xff", previous_until=3600.5,
                            key_id="svc_acct_2", previous_key_id="svc_acct_1")
    await gov.put_credential(cred)
    assert await gov.get_credential("openai-prod") == cred
    cred.previous_ciphertext = cred.previous_until = cred.previous_key_id = None
    await gov.put_credential(cred)
    assert await gov.list_credentials() == [cred]


async def test_audit_chain_links_every_record(gov: Any) -> None:
    detail = {"z": 1, "a": [1, "two"], "nested": {"b": None}}
    records = [await gov.append_audit(100.0 + i, "master", "key.create", f"k{i}", detail, chain)
               for i in range(3)]
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == ZERO
    stored = await gov.audit()
    assert stored == records
    prev = ZERO
    for r in stored:  # a verifier re-hashing what it reads gets the stored hashes
        assert r.prev_hash == prev
        assert r.hash == chain(prev, r.seq, r.ts, r.actor, r.action, r.target, r.detail)
        prev = r.hash
    assert list(stored[0].detail) == ["z", "a", "nested"]  # key order kept
    assert [r.seq for r in await gov.audit(since_seq=1, limit=1)] == [2]


async def test_a_batch_of_audit_records_continues_the_chain_in_order(gov: Any) -> None:
    first = await gov.append_audit(1.0, "master", "key.create", "k1", {}, chain)
    assert await gov.append_audit_many([], chain) == []
    batch = await gov.append_audit_many(
        [AuditEntry(2.0 + i, f"key_{i}", "security.pii", "mask", {"n": i, "z": [1]})
         for i in range(3)], chain)
    last = await gov.append_audit(9.0, "master", "key.revoke", "k1", {}, chain)
    stored = await gov.audit()
    assert stored == [first, *batch, last]
    assert [r.seq for r in stored] == [1, 2, 3, 4, 5]
    prev = ZERO
    for r in stored:
        assert r.prev_hash == prev
        assert r.hash == chain(prev, r.seq, r.ts, r.actor, r.action, r.target, r.detail)
        prev = r.hash
    assert [r.detail["n"] for r in batch] == [0, 1, 2]


async def test_a_batch_that_fails_midway_stores_none_of_it(gov: Any) -> None:
    await gov.append_audit(1.0, "master", "key.create", "k1", {}, chain)
    calls = 0

    def breaks_on_the_second(*args: Any) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("chain refused")
        return chain(*args)

    with pytest.raises(RuntimeError):
        await gov.append_audit_many([AuditEntry(2.0 + i, "a", "x", None, {}) for i in range(3)],
                                    breaks_on_the_second)
    assert [r.seq for r in await gov.audit()] == [1]
    nxt = await gov.append_audit(5.0, "master", "x", None, {}, chain)
    assert nxt.seq == 2


async def test_audit_retention_deletes_a_prefix_and_the_sequence_goes_on(gov: Any) -> None:
    for i, ts in enumerate([10.0, 20.0, 15.0, 30.0, 40.0]):  # record 3 has a skewed clock
        await gov.append_audit(ts, "system", "x", None, {"i": i}, chain)
    assert await gov.delete_audit_before(25.0, limit=1) == 1
    assert await gov.delete_audit_before(25.0, limit=100) == 2
    kept = await gov.audit()
    assert [r.seq for r in kept] == [4, 5]
    assert await gov.delete_audit_before(1000.0, limit=100) == 2
    assert await gov.audit() == []
    nxt = await gov.append_audit(50.0, "system", "x", None, {}, chain)
    assert nxt.seq == 6 and nxt.prev_hash == kept[-1].hash


async def test_two_replicas_appending_at_once_never_fork_the_chain(replicas: list[Any]) -> None:
    a, b = replicas

    async def writer(store: Any, who: str) -> None:
        for i in range(40):
            await store.append_audit(float(i), who, "auth.denied", None, {"i": i}, chain)

    await asyncio.gather(writer(a, "a1"), writer(b, "b1"), writer(a, "a2"), writer(b, "b2"))
    records = await a.audit(limit=1000)
    assert [r.seq for r in records] == list(range(1, 161))
    prev = ZERO
    for r in records:
        assert r.prev_hash == prev and r.hash == chain(prev, r.seq, r.ts, r.actor, r.action,
                                                        r.target, r.detail)
        prev = r.hash
    assert {r.actor for r in records} == {"a1", "a2", "b1", "b2"}


async def test_two_replicas_appending_batches_at_once_never_fork_the_chain(
        replicas: list[Any]) -> None:
    a, b = replicas

    async def writer(store: Any, who: str) -> None:
        for i in range(8):
            await store.append_audit_many(
                [AuditEntry(float(i), who, "security.pii", "mask", {"i": i, "j": j})
                 for j in range(5)], chain)
            await store.append_audit(float(i), who, "key.create", None, {"i": i}, chain)

    await asyncio.gather(writer(a, "a1"), writer(b, "b1"), writer(a, "a2"), writer(b, "b2"))
    records = await a.audit(limit=1000)
    assert [r.seq for r in records] == list(range(1, 4 * 8 * 6 + 1))
    prev = ZERO
    for r in records:
        assert r.prev_hash == prev and r.hash == chain(prev, r.seq, r.ts, r.actor, r.action,
                                                        r.target, r.detail)
        prev = r.hash
    for who in ("a1", "a2", "b1", "b2"):  # each batch stayed in one piece, in order
        mine = [r for r in records if r.actor == who and r.action == "security.pii"]
        assert [(r.detail["i"], r.detail["j"]) for r in mine] == [
            (i, j) for i in range(8) for j in range(5)]
        seqs = [r.seq for r in mine]
        assert all(seqs[k + 4] - seqs[k] == 4 for k in range(0, len(seqs), 5))
