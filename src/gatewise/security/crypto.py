"""`SecretBox`: AES-256-GCM for secrets at rest (provider credentials in the governance store).

A sealed blob is `nonce (12 random bytes) || ciphertext || tag (16 bytes)`. The `aad`
(associated data) binds a blob to its context, e.g. the credential's name, so a ciphertext
copied onto another row fails to open instead of decrypting as the wrong secret.

Key material (`security.encryption_key` in the config) is accepted as:

- 32 bytes in base64 (standard or URL-safe, padded or not): what `generate_key()` prints;
- 32 bytes as 64 hex characters;
- anything else of at least 16 characters is a passphrase, stretched with scrypt
  (n=2**15, r=8, p=1) under a fixed, gatewise-specific salt. The salt is fixed so that every
  replica derives the same key from the same passphrase with nothing else to share; scrypt's
  cost is what protects a weak passphrase, so prefer a generated key.

Key material never appears in `repr`, `str`, error messages or pickles.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from gatewise.errors import SecretBoxError

NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
MIN_PASSPHRASE = 16
_SCRYPT_SALT = b"gatewise/secretbox/v1"
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1


def generate_key() -> str:
    """A fresh random 256-bit key, base64-encoded (put it in `GATEWISE_ENCRYPTION_KEY`)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _decode_key(material: str) -> bytes | None:
    m = material.strip()
    if len(m) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(m)
        except ValueError:
            pass
    if len(m) in (43, 44):
        padded = m + "=" * (-len(m) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decode(padded.encode("ascii"))
            except (binascii.Error, ValueError, UnicodeEncodeError):
                continue
            if len(raw) == KEY_BYTES:
                return raw
    return None


class SecretBox:
    __slots__ = ("_aead", "fingerprint")

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != KEY_BYTES:
            raise ValueError(f"SecretBox needs a {KEY_BYTES}-byte key")
        self._aead = AESGCM(key)
        # Safe to show: lets operators check two replicas hold the same key without seeing it.
        self.fingerprint = hashlib.sha256(b"gatewise-key-id:" + key).hexdigest()[:12]

    @classmethod
    def from_key_material(cls, material: str) -> SecretBox:
        key = _decode_key(material)
        if key is None:
            passphrase = material.strip()
            if len(passphrase) < MIN_PASSPHRASE:
                raise ValueError("encryption key must be 32 bytes as base64 or hex, or a passphrase "
                                 f"of at least {MIN_PASSPHRASE} characters")
            key = hashlib.scrypt(passphrase.encode(), salt=_SCRYPT_SALT, n=_SCRYPT_N, r=_SCRYPT_R,
                                 p=_SCRYPT_P, maxmem=64 * 1024 * 1024, dklen=KEY_BYTES)
        return cls(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise SecretBoxError("sealed secret is truncated")
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise SecretBoxError("sealed secret failed authentication: tampered, or sealed under "
                                 "another key or context") from None

    def __repr__(self) -> str:
        return f"SecretBox(fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("SecretBox holds key material and cannot be pickled or copied")

    def __copy__(self) -> NoReturn:
        raise TypeError("SecretBox holds key material and cannot be pickled or copied")

    def __deepcopy__(self, memo: dict[int, Any]) -> NoReturn:
        raise TypeError("SecretBox holds key material and cannot be pickled or copied")


class SealedKV:
    """A key-value store whose values are sealed with AES-GCM before they reach the backend,
    bound to their key (a value copied under another key does not open). For what must be
    shared across replicas but is itself sensitive: the PII vault holds the original values
    behind each placeholder."""

    def __init__(self, inner: Any, box: SecretBox, *, context: bytes = b"gatewise:kv:") -> None:
        self._inner = inner
        self._box = box
        self._context = context

    async def get(self, key: str) -> bytes | None:
        blob = await self._inner.get(key)
        return None if blob is None else self._box.open(blob, self._context + key.encode())

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self._inner.set(key, self._box.seal(value, self._context + key.encode()), ttl)

    async def delete(self, key: str) -> bool:
        return bool(await self._inner.delete(key))

    async def delete_prefix(self, prefix: str) -> int:
        return int(await self._inner.delete_prefix(prefix))

    # Sets and counters hold keys and numbers, not values: they pass through unsealed.
    async def add_members(self, key: str, members: Sequence[str],
                          ttl: float | None = None) -> None:
        await self._inner.add_members(key, members, ttl)

    async def members(self, key: str) -> list[str]:
        return list(await self._inner.members(key))

    async def incr_fields(self, key: str, deltas: Mapping[str, float]) -> None:
        await self._inner.incr_fields(key, deltas)

    async def fields(self, key: str) -> dict[str, float]:
        return dict(await self._inner.fields(key))

    async def purge_expired(self) -> int:
        return int(await self._inner.purge_expired())

    async def trim(self, prefix: str, keep: int) -> int:
        return int(await self._inner.trim(prefix, keep))

    async def aclose(self) -> None:
        return None  # the inner store belongs to whoever opened it
