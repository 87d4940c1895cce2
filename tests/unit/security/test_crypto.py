"""SecretBox: AES-256-GCM with a random nonce, bound to a context, and silent about its key."""

from __future__ import annotations

import base64
import copy
import pickle

import pytest

from gatewise.security.crypto import SecretBox, SecretBoxError, generate_key

KEY = bytes(range(32))


def test_seal_and_open_round_trip_with_a_fresh_nonce_each_time() -> None:
    box = SecretBox(KEY)
    a, b = box.seal(b"sk-live-123", b"ctx"), box.seal(b"sk-live-123", b"ctx")
    assert a != b and a[:12] != b[:12]
    assert len(a) == 12 + len(b"sk-live-123") + 16
    assert b"sk-live-123" not in a
    assert box.open(a, b"ctx") == box.open(b, b"ctx") == b"sk-live-123"


@pytest.mark.parametrize("where", [0, 12, -1])
def test_a_flipped_byte_anywhere_fails_to_open(where: int) -> None:
    box = SecretBox(KEY)
    blob = bytearray(box.seal(b"secret", b"ctx"))
    blob[where] ^= 1
    with pytest.raises(SecretBoxError, match="failed authentication"):
        box.open(bytes(blob), b"ctx")


def test_another_context_another_key_or_a_truncated_blob_fail_to_open() -> None:
    box = SecretBox(KEY)
    blob = box.seal(b"secret", b"cred:a")
    with pytest.raises(SecretBoxError):
        box.open(blob, b"cred:b")
    with pytest.raises(SecretBoxError):
        SecretBox(bytes(32)).open(blob, b"cred:a")
    with pytest.raises(SecretBoxError, match="truncated"):
        box.open(blob[:20], b"cred:a")


def test_key_material_is_accepted_as_base64_urlsafe_unpadded_or_hex() -> None:
    blob = SecretBox(KEY).seal(b"x", b"")
    forms = [base64.b64encode(KEY).decode(), base64.urlsafe_b64encode(KEY).decode().rstrip("="),
             KEY.hex(), f"  {KEY.hex().upper()}\n"]
    for material in forms:
        assert SecretBox.from_key_material(material).open(blob, b"") == b"x"


def test_a_passphrase_derives_the_same_key_on_every_replica() -> None:
    a = SecretBox.from_key_material("correct horse battery staple")
    b = SecretBox.from_key_material("correct horse battery staple")
    assert b.open(a.seal(b"x", b""), b"") == b"x"
    assert a.fingerprint == b.fingerprint
    assert SecretBox.from_key_material("correct horse battery stapler").fingerprint != a.fingerprint


def test_short_passphrases_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError) as err:
        SecretBox.from_key_material("hunter2")
    assert "hunter2" not in str(err.value)


def test_generate_key_gives_32_random_bytes_in_base64() -> None:
    k1, k2 = generate_key(), generate_key()
    assert k1 != k2 and len(base64.b64decode(k1)) == 32
    SecretBox.from_key_material(k1)


def test_key_material_never_appears_in_repr_str_or_copies() -> None:
    material = base64.b64encode(KEY).decode()
    box = SecretBox.from_key_material(material)
    for text in (repr(box), str(box), f"{box}"):
        assert material not in text and KEY.hex() not in text and "fingerprint" in text
    with pytest.raises(TypeError):
        pickle.dumps(box)
    with pytest.raises(TypeError):
        copy.deepcopy(box)
