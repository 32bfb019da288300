"""Ed25519 signing, key ids, key files (ledger/signing.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import Reason, SignatureError
from ledger.signing import Ed25519Signer, Signer, key_id_for, verify_signature
from tests.strategies import signers

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "ed25519" / "rfc8032-7.1.json").read_text()
)["vectors"]
FAST = settings(max_examples=40, deadline=None)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_rfc8032_vector_public_key_and_signature(vector: dict[str, Any]) -> None:
    signer = Ed25519Signer.from_seed(bytes.fromhex(vector["secret_key"]))
    message = bytes.fromhex(vector["message"])
    assert signer.public_key.hex() == vector["public_key"]
    assert signer.sign(message).hex() == vector["signature"]
    verify_signature(signer.public_key, bytes.fromhex(vector["signature"]), message)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_rfc8032_vector_rejects_tampered_message(vector: dict[str, Any]) -> None:
    message = bytes.fromhex(vector["message"]) + b"\x00"
    with pytest.raises(SignatureError) as info:
        verify_signature(
            bytes.fromhex(vector["public_key"]), bytes.fromhex(vector["signature"]), message
        )
    assert info.value.reason is Reason.BAD_SIGNATURE


def test_key_id_is_prefix_and_16_hex_digits_of_sha256() -> None:
    public_key = bytes.fromhex(VECTORS[0]["public_key"])
    expected = "ed25519:" + hashlib.sha256(public_key).hexdigest()[:16]
    assert key_id_for(public_key) == expected
    assert Ed25519Signer.from_seed(bytes.fromhex(VECTORS[0]["secret_key"])).key_id == expected


def test_key_id_of_rfc8032_test1_key_is_pinned() -> None:
    # Pinned so that a change of the key-id definition cannot go unnoticed (docs/envelope.md).
    assert key_id_for(bytes.fromhex(VECTORS[0]["public_key"])) == "ed25519:21fe31dfa154a261"


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_key_id_rejects_wrong_size(size: int) -> None:
    with pytest.raises(SignatureError) as info:
        key_id_for(bytes(size))
    assert info.value.reason is Reason.BAD_KEY_FILE


def test_ed25519_signer_is_a_signer() -> None:
    assert isinstance(Ed25519Signer.generate(), Signer)


def test_generated_keys_differ() -> None:
    assert Ed25519Signer.generate().public_key != Ed25519Signer.generate().public_key


def test_repr_does_not_reveal_the_private_key() -> None:
    signer = Ed25519Signer.from_seed(bytes(range(32)))
    assert repr(signer) == f"Ed25519Signer(key_id={signer.key_id!r})"


@FAST
@given(signers, st.binary(max_size=200))
def test_any_signature_verifies(signer: Ed25519Signer, message: bytes) -> None:
    verify_signature(signer.public_key, signer.sign(message), message)


@FAST
@given(signers, st.binary(min_size=1, max_size=100), st.data())
def test_rejects_any_flipped_bit_in_signature_or_message(
    signer: Ed25519Signer, message: bytes, data: st.DataObject
) -> None:
    signature = signer.sign(message)
    target = data.draw(st.sampled_from(["signature", "message"]))
    buffer = bytearray(signature if target == "signature" else message)
    bit = data.draw(st.integers(min_value=0, max_value=len(buffer) * 8 - 1))
    buffer[bit // 8] ^= 1 << (bit % 8)
    forged = (bytes(buffer), message) if target == "signature" else (signature, bytes(buffer))
    with pytest.raises(SignatureError) as info:
        verify_signature(signer.public_key, *forged)
    assert info.value.reason is Reason.BAD_SIGNATURE


def test_rejects_signature_by_another_key() -> None:
    alice, mallory = Ed25519Signer.generate(), Ed25519Signer.generate()
    with pytest.raises(SignatureError):
        verify_signature(alice.public_key, mallory.sign(b"m"), b"m")


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [(bytes(31), bytes(64)), (bytes(32), bytes(63)), (bytes(32), bytes(65)), (b"", b"")],
)
def test_rejects_malformed_key_or_signature(public_key: bytes, signature: bytes) -> None:
    with pytest.raises(SignatureError) as info:
        verify_signature(public_key, signature, b"m")
    assert info.value.reason is Reason.BAD_SIGNATURE


@FAST
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64))
def test_random_key_and_signature_raise_only_signature_error(
    public_key: bytes, signature: bytes
) -> None:
    with pytest.raises(SignatureError):
        verify_signature(public_key, signature, b"message")


# --- PEM key files ------------------------------------------------------------------------------


def test_pem_round_trip_unencrypted() -> None:
    signer = Ed25519Signer.generate()
    pem = signer.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert Ed25519Signer.from_pem(pem).public_key == signer.public_key


def test_pem_round_trip_encrypted() -> None:
    signer = Ed25519Signer.generate()
    pem = signer.to_pem(b"correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert Ed25519Signer.from_pem(pem, b"correct horse").key_id == signer.key_id


def test_rejects_wrong_passphrase_without_echoing_it() -> None:
    pem = Ed25519Signer.generate().to_pem(b"correct horse")
    with pytest.raises(SignatureError) as info:
        Ed25519Signer.from_pem(pem, b"battery staple")
    assert info.value.reason is Reason.BAD_KEY_FILE
    assert "battery" not in str(info.value)


def test_rejects_missing_passphrase_for_encrypted_key() -> None:
    pem = Ed25519Signer.generate().to_pem(b"correct horse")
    with pytest.raises(SignatureError) as info:
        Ed25519Signer.from_pem(pem)
    assert info.value.reason is Reason.BAD_KEY_FILE


def test_rejects_passphrase_for_unencrypted_key() -> None:
    with pytest.raises(SignatureError) as info:
        Ed25519Signer.from_pem(Ed25519Signer.generate().to_pem(), b"unexpected")
    assert info.value.reason is Reason.BAD_KEY_FILE


def test_rejects_empty_passphrase() -> None:
    with pytest.raises(SignatureError) as info:
        Ed25519Signer.generate().to_pem(b"")
    assert info.value.reason is Reason.BAD_KEY_FILE


def test_rejects_non_ed25519_key_file() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(SignatureError) as info:
        Ed25519Signer.from_pem(pem)
    assert info.value.reason is Reason.BAD_KEY_FILE


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
)
def test_rejects_garbage_key_file(data: bytes) -> None:
    with pytest.raises(SignatureError) as info:
        Ed25519Signer.from_pem(data)
    assert info.value.reason is Reason.BAD_KEY_FILE


@pytest.mark.parametrize("size", [0, 31, 33])
def test_rejects_seed_of_wrong_size(size: int) -> None:
    with pytest.raises(SignatureError) as info:
        Ed25519Signer.from_seed(bytes(size))
    assert info.value.reason is Reason.BAD_KEY_FILE
