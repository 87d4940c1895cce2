"""The vault: one placeholder per value per conversation, stable across turns and replicas,
never colliding with placeholder-shaped text the caller wrote."""

from __future__ import annotations

from gatewise.guardrails.pii import PIIVault
from gatewise.guardrails.pii.vault import label_for, placeholders_in, vault_key
from gatewise.storage.memory import MemoryKV


def test_the_same_value_gets_the_same_placeholder() -> None:
    v = PIIVault()
    a = v.placeholder_for("PERSON", "John Smith")
    assert a == "<PERSON_1>"
    assert v.placeholder_for("PERSON", "Maria Garcia") == "<PERSON_2>"
    assert v.placeholder_for("PERSON", "John Smith") == a
    assert v.value_of(a) == "John Smith"


def test_labels_are_short_and_numbered_per_label() -> None:
    v = PIIVault()
    assert v.placeholder_for("IBAN_CODE", "GB82WEST12345698765432") == "<IBAN_1>"
    assert v.placeholder_for("EMAIL_ADDRESS", "a@example.com") == "<EMAIL_1>"
    assert v.placeholder_for("IBAN_CODE", "DE89370400440532013000") == "<IBAN_2>"
    assert label_for("customer-id") == "CUSTOMER_ID"
    assert label_for("9LIVES") == "PII_9LIVES"


def test_allocation_skips_placeholders_already_in_the_prompt() -> None:
    v = PIIVault()
    avoid = frozenset(placeholders_in("I literally typed <PERSON_1> and <PERSON_2> here"))
    assert v.placeholder_for("PERSON", "John Smith", avoid=avoid) == "<PERSON_3>"
    assert v.value_of("<PERSON_1>") is None


async def test_a_later_turn_on_another_replica_sees_the_same_mapping() -> None:
    store = MemoryKV()
    key = vault_key("acme", "conv-1")
    assert key == "vault:acme:conv-1"
    first = PIIVault(key)
    await first.load(store)
    ph = first.placeholder_for("PERSON", "John Smith")
    await first.save(store, ttl=60)

    other = PIIVault(key)          # another replica, empty memory
    await other.load(store)
    assert other.placeholder_for("PERSON", "John Smith") == ph
    assert other.placeholder_for("PERSON", "Maria Garcia") == "<PERSON_2>"


async def test_tenants_do_not_share_a_vault() -> None:
    store = MemoryKV()
    a = PIIVault(vault_key("acme", "c"))
    a.placeholder_for("PERSON", "John Smith")
    await a.save(store, ttl=None)
    b = PIIVault(vault_key("globex", "c"))
    await b.load(store)
    assert len(b) == 0


async def test_merge_keeps_local_entries_and_never_reuses_a_number() -> None:
    store = MemoryKV()
    key = vault_key("t", "c")
    remote = PIIVault(key)
    remote.placeholder_for("PERSON", "Alice Jones")      # <PERSON_1> elsewhere
    await remote.save(store, ttl=None)
    local = PIIVault(key)
    local.placeholder_for("PERSON", "Bob Brown")         # <PERSON_1> here, before loading
    await local.load(store)
    assert local.value_of("<PERSON_1>") == "Bob Brown"
    assert local.placeholder_for("PERSON", "Carol White") == "<PERSON_2>"


async def test_an_unreadable_stored_vault_starts_afresh() -> None:
    store = MemoryKV()
    await store.set("vault:t:c", b"not json")
    v = PIIVault("vault:t:c")
    await v.load(store)
    assert len(v) == 0


async def test_nothing_is_written_when_nothing_new_was_allocated() -> None:
    store = MemoryKV()
    v = PIIVault("vault:t:c")
    await v.save(store, ttl=None)
    assert await store.get("vault:t:c") is None
