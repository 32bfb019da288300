"""Ed25519 keys: a small Signer interface, key ids, and signature verification.

Shaped after securesystemslib's ``signer`` package: the emitter holds a :class:`Signer` (here
a file-backed :class:`Ed25519Signer`; a KMS or HSM signer only has to provide the same three
members), verifiers call :func:`verify_signature`, which returns ``None`` or raises.

Keys are Ed25519 (RFC 8032 section 5.1); public keys travel as their 32-byte raw encoding
(RFC 8032 section 5.1.5), private keys live in the emitter's files as PKCS#8 PEM (RFC 5208 /
RFC 8410), optionally encrypted with a passphrase.

Key id (:func:`key_id_for`): ``"ed25519:"`` followed by the first 16 lower-case hex digits
(64 bits) of SHA-256 over the 32-byte raw public key. It is a lookup index, not a security
boundary: a signature is always checked against the full public key the id resolves to, and
the key registry refuses a second key with an id it already holds.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.errors import Reason, SignatureError

KEY_ID_PREFIX = "ed25519:"
PUBLIC_KEY_SIZE = 32
"""Bytes of a raw Ed25519 public key (RFC 8032 section 5.1.5)."""
SIGNATURE_SIZE = 64
"""Bytes of an Ed25519 signature (RFC 8032 section 5.1.6)."""
SEED_SIZE = 32
"""Bytes of an Ed25519 private key ("secret key" in RFC 8032 section 5.1.5 and 7.1)."""


@runtime_checkable
class Signer(Protocol):
    """Something that signs bytes with an Ed25519 key it may never reveal."""

    @property
    def key_id(self) -> str:
        """:func:`key_id_for` of :attr:`public_key`."""
        ...

    @property
    def public_key(self) -> bytes:
        """The 32-byte raw Ed25519 public key."""
        ...

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        ...


def key_id_for(public_key: bytes) -> str:
    """``"ed25519:"`` + the first 16 hex digits of SHA-256(raw public key).

    Raises:
        SignatureError(BAD_KEY_FILE): not a 32-byte raw Ed25519 public key.
    """
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise SignatureError(
            Reason.BAD_KEY_FILE,
            f"an Ed25519 public key has {PUBLIC_KEY_SIZE} bytes, got {len(public_key)}",
        )
    return KEY_ID_PREFIX + hashlib.sha256(public_key).hexdigest()[:16]


def verify_signature(public_key: bytes, signature: bytes, data: bytes) -> None:
    """Return if ``signature`` is a valid Ed25519 signature of ``data`` by ``public_key``.

    Verification is RFC 8032 section 5.1.7 as implemented by OpenSSL through cryptography.

    Raises:
        SignatureError(BAD_SIGNATURE): the signature does not verify, has the wrong size, or
            the public key is not a valid 32-byte Ed25519 key.
    """
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise SignatureError(
            Reason.BAD_SIGNATURE, f"public key has {len(public_key)} bytes, not 32"
        )
    if len(signature) != SIGNATURE_SIZE:
        raise SignatureError(Reason.BAD_SIGNATURE, f"signature has {len(signature)} bytes, not 64")
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public_key)).verify(bytes(signature), bytes(data))
    except InvalidSignature:
        raise SignatureError(Reason.BAD_SIGNATURE, "signature does not verify") from None
    except ValueError as exc:
        raise SignatureError(Reason.BAD_SIGNATURE, f"invalid public key: {exc}") from exc


class Ed25519Signer:
    """A :class:`Signer` holding an Ed25519 private key in memory."""

    __slots__ = ("_key", "_key_id", "_public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._key_id = key_id_for(self._public_key)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        """A new random key (from the operating system's CSPRNG)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519Signer:
        """The key whose 32-byte RFC 8032 private key ("SECRET KEY" in section 7.1) is ``seed``.

        Raises:
            SignatureError(BAD_KEY_FILE): ``seed`` is not 32 bytes.
        """
        if len(seed) != SEED_SIZE:
            raise SignatureError(
                Reason.BAD_KEY_FILE, f"an Ed25519 seed has 32 bytes, got {len(seed)}"
            )
        return cls(Ed25519PrivateKey.from_private_bytes(bytes(seed)))

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> Ed25519Signer:
        """Load a PKCS#8 PEM private key, decrypting it with ``passphrase`` if it is encrypted.

        Raises:
            SignatureError(BAD_KEY_FILE): not a PEM private key, wrong or missing passphrase,
                or not an Ed25519 key. The message never contains the passphrase.
        """
        try:
            key = serialization.load_pem_private_key(bytes(data), password=passphrase)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SignatureError(
                Reason.BAD_KEY_FILE,
                f"cannot load the private key (not PKCS#8 PEM, or wrong passphrase): {exc}",
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SignatureError(
                Reason.BAD_KEY_FILE, f"expected an Ed25519 key, got {type(key).__name__}"
            )
        return cls(key)

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """The key as PKCS#8 PEM, encrypted with ``passphrase`` (BestAvailableEncryption) if
        one is given.

        Raises:
            SignatureError(BAD_KEY_FILE): an empty passphrase.
        """
        if passphrase is None:
            encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
        elif not passphrase:
            raise SignatureError(Reason.BAD_KEY_FILE, "the passphrase is empty")
        else:
            encryption = serialization.BestAvailableEncryption(passphrase)
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(bytes(data))

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self._key_id!r})"
