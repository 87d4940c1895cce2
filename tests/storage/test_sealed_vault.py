"""The PII vault shared through Redis is sealed with AES-GCM: another replica restores the
placeholders of a conversation, while Redis itself only ever holds ciphertext."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.guardrails.pii.vault import vault_key
from gatewise.security.crypto import SealedKV, SecretBox, SecretBoxError, generate_key
from gatewise.storage.memory import MemoryKV
from gatewise.storage.redis import RedisKV

EMAIL = "jane.doe@example.org"
OTHER = "john.roe@example.net"


async def test_sealed_values_open_only_under_their_own_key() -> None:
    inner = MemoryKV()
    kv = SealedKV(inner, SecretBox.from_key_material(generate_key()))
    await kv.set("a", b"secret value")
    assert await kv.get("a") == b"secret value"
    raw = await inner.get("a")
    assert raw is not None and b"secret" not in raw
    await inner.set("b", raw)  # a ciphertext copied under another key
    with pytest.raises(SecretBoxError):
        await kv.get("b")


def _gateway(tmp_path: Path, redis_url: str, prefix: str, key: str) -> Gateway:
    cfg, w = parse_config({
        "models": {"m": [{"model": "fake/echo"}]},
        "storage": {"state_dir": str(tmp_path), "redis_url": redis_url, "redis_prefix": prefix},
        "security": {"encryption_key": key},
        "guardrails": {"default": {"pii": {}}}})
    return Gateway(resolve_config(cfg, None, {}, w))


async def _values(client: aioredis.Redis, key: bytes) -> list[bytes]:
    kind = (await client.type(key)).decode()
    if kind == "string":
        return [await client.get(key)]
    if kind == "list":
        return list(await client.lrange(key, 0, -1))
    if kind == "hash":
        return list((await client.hgetall(key)).values())
    if kind == "set":
        return list(await client.smembers(key))
    if kind == "zset":
        return list(await client.zrange(key, 0, -1))
    return []


async def test_another_replica_restores_a_conversation_from_ciphertext(
        tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    key = generate_key()
    a = _gateway(tmp_path / "a", redis_url, redis_prefix, key)
    b = _gateway(tmp_path / "b", redis_url, redis_prefix, key)
    try:
        first = await a.chat(f"write to {EMAIL}", model="m", conversation="c-1")
        assert first.content == f"Hello! You said: write to {EMAIL}"
        # Every value under the prefix (the sealed vault, and the conversation's stored turns,
        # which are masked) is free of the raw e-mail, whatever Redis type holds it.
        client = aioredis.Redis.from_url(redis_url)
        stored = [v async for k in client.scan_iter(match=f"{redis_prefix}*")
                  for v in await _values(client, k)]
        await client.aclose()
        assert stored and all(EMAIL.encode() not in v for v in stored)
        # Replica B never saw the first e-mail: it numbers a new one after it, because it
        # reads the conversation's vault from Redis (and writes it back, sealed).
        again = await b.chat(f"and cc {OTHER}", model="m", conversation="c-1")
        assert again.content == f"Hello! You said: and cc {OTHER}"
        shared = RedisKV(redis_url, prefix=redis_prefix)
        sealed = SealedKV(shared, SecretBox.from_key_material(key), context=b"gatewise:pii-vault:")
        raw = await sealed.get(vault_key("default", "c-1"))
        await shared.aclose()
        assert raw is not None
        assert json.loads(raw)["v"] == {"<EMAIL_1>": EMAIL, "<EMAIL_2>": OTHER}
    finally:
        await a.aclose()
        await b.aclose()
