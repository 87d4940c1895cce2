"""The audit chain: every record hashed over its content and its predecessor's hash, so any
edit, deletion or reordering is found by `verify()` at the seq where it happened."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Callable

import pytest

from gatewise.security.audit import GENESIS_HASH, AuditLog, chain_hash
from gatewise.storage.base import AuditRecord
from gatewise.storage.memory_governance import MemoryGovernance
from tests.unit.security.conftest import Clock


class Tampered(MemoryGovernance):
    """A store whose reads pass through `edit`: what an attacker with database access shows."""

    def __init__(self) -> None:
        super().__init__()
        self.edit: Callable[[list[AuditRecord]], list[AuditRecord]] = lambda rs: rs

    async def audit(self, *, since_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        everything = self.edit(await super().audit(limit=10**9))
        after = [r for r in everything if r.seq > since_seq] if since_seq else everything
        return after[:limit]


async def filled(n: int = 6, page: int = 1000) -> tuple[Tampered, AuditLog, Clock]:
    store, clock = Tampered(), Clock()
    log = AuditLog(store, clock=clock, page=page)
    for i in range(n):
        clock.now += 10
        await log.record("master", "key.create", f"k{i}", role="member", n=i)
    return store, log, clock


def test_chain_hash_is_sha256_of_canonical_json() -> None:
    body = ('{"action":"a","actor":"x","detail":{"a":[1,2],"b":1},"prev_hash":"' + GENESIS_HASH
            + '","seq":1,"target":null,"ts":1.5}')
    assert chain_hash(GENESIS_HASH, 1, 1.5, "x", "a", None, {"b": 1, "a": [1, 2]}) == \
        hashlib.sha256(body.encode()).hexdigest()
    json.loads(body)


async def test_records_are_linked_from_the_genesis_hash_and_verify() -> None:
    store, log, _ = await filled()
    recs = await store.audit()
    assert [r.seq for r in recs] == [1, 2, 3, 4, 5, 6]
    assert recs[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(recs))
    result = await log.verify()
    assert result.ok and result.checked == 6 and result.first_bad_seq is None


async def test_verify_walks_in_pages() -> None:
    _, log, _ = await filled(7, page=2)
    result = await log.verify()
    assert result.ok and result.checked == 7


async def test_an_edited_detail_fails_at_that_seq() -> None:
    store, log, _ = await filled()

    def edit(rs: list[AuditRecord]) -> list[AuditRecord]:
        return [dataclasses.replace(r, detail={**r.detail, "role": "admin"}) if r.seq == 3 else r
                for r in rs]

    store.edit = edit
    result = await log.verify()
    assert not result.ok and result.first_bad_seq == 3 and result.checked == 2


async def test_an_edit_with_a_recomputed_hash_fails_at_the_next_seq() -> None:
    store, log, _ = await filled()

    def edit(rs: list[AuditRecord]) -> list[AuditRecord]:
        out = []
        for r in rs:
            if r.seq == 3:
                d = {**r.detail, "role": "admin"}
                r = dataclasses.replace(r, detail=d, hash=chain_hash(
                    r.prev_hash, r.seq, r.ts, r.actor, r.action, r.target, d))
            out.append(r)
        return out

    store.edit = edit
    result = await log.verify()
    assert not result.ok and result.first_bad_seq == 4 and "prev_hash" in (result.reason or "")


async def test_a_deleted_middle_record_fails_at_its_seq() -> None:
    store, log, _ = await filled()
    store.edit = lambda rs: [r for r in rs if r.seq != 4]
    result = await log.verify()
    assert not result.ok and result.first_bad_seq == 4


async def test_reordered_records_fail_at_the_first_moved_seq() -> None:
    store, log, _ = await filled()
    store.edit = lambda rs: [*rs[:2], rs[3], rs[2], *rs[4:]]
    assert (await log.verify()).first_bad_seq == 3

    def renumber(rs: list[AuditRecord]) -> list[AuditRecord]:  # swap contents, keep seq order
        a, b = rs[2], rs[3]
        return [*rs[:2], dataclasses.replace(b, seq=3), dataclasses.replace(a, seq=4), *rs[4:]]

    store.edit = renumber
    result = await log.verify()
    assert not result.ok and result.first_bad_seq == 3


async def test_a_forged_first_record_is_caught() -> None:
    store, log, _ = await filled(3)
    store.edit = lambda rs: [dataclasses.replace(rs[0], prev_hash="1" * 64), *rs[1:]]
    assert (await log.verify()).first_bad_seq == 1


async def test_after_retention_the_oldest_kept_record_anchors_the_chain() -> None:
    store, log, _ = await filled(6)
    first_ts = (await store.audit())[0].ts
    assert await store.delete_audit_before(first_ts + 25, limit=100) == 3
    result = await log.verify()
    assert result.ok and result.checked == 3
    rec = await log.record("system", "retention.purge", None, audit=3)
    assert rec.seq == 7
    assert (await log.verify()).checked == 4


@pytest.mark.parametrize("name", ["secret", "api_key", "apiKey", "token", "password",
                                  "new_secret", "access-token", "PASSWORD"])
async def test_detail_keys_that_name_secrets_are_refused(name: str) -> None:
    store = MemoryGovernance()
    with pytest.raises(ValueError, match="names a secret"):
        await AuditLog(store).record("master", "x", None, **{name: "v"})
    with pytest.raises(ValueError, match="names a secret"):
        await AuditLog(store).record("master", "x", None, nested={"a": [{name: "v"}]})
    assert await store.audit() == []


async def test_harmless_names_that_contain_secret_words_are_allowed() -> None:
    store = MemoryGovernance()
    await AuditLog(store).record("master", "usage", None, prompt_tokens=3, secret_hash_algo="sha256",
                                 tokens=5)
    assert len(await store.audit()) == 1


async def test_detail_values_must_be_json_able() -> None:
    with pytest.raises(ValueError, match="JSON-able"):
        await AuditLog(MemoryGovernance()).record("master", "x", None, when=object())
    with pytest.raises(ValueError, match="JSON-able"):
        await AuditLog(MemoryGovernance()).record("master", "x", None, score=float("nan"))
