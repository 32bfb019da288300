"""The one composition root: settings in, concrete adapters and core objects out.

Nothing here runs at import time; every function builds what it is asked for from explicit
settings (STYLE.md lesson 7).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.config import Settings
from ledger.envelope import KnownKey
from ledger.errors import Reason, SignatureError
from ledger.rules import RuleContext
from ledger.signing import Ed25519Signer, key_id_for
from ledger.sqlstore import open_engine
from ledger.store import LedgerStore
from schemas.events import HUB_PRODUCER_ID
from schemas.materials import MaterialList, default_materials


def authority_public_key(settings: Settings) -> bytes:
    """The hub authority's raw public key, from the settings' base64 or its PEM file.

    Raises:
        SignatureError(BAD_KEY_FILE): missing or unreadable key.
    """
    if settings.authority_public_key:
        try:
            raw = base64.b64decode(settings.authority_public_key, validate=True)
        except binascii.Error as exc:
            raise SignatureError(Reason.BAD_KEY_FILE, "authority public key is not base64") from exc
        key_id_for(raw)  # validates the length
        return raw
    path = settings.effective_authority_key
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SignatureError(
            Reason.BAD_KEY_FILE,
            f"no hub authority key at {path} (create one with `cehub keys new --out {path}` "
            "or set CEHUB_AUTHORITY_KEY / CEHUB_AUTHORITY_PUBLIC_KEY)",
        ) from exc
    return _public_key_from_pem(data, path)


def _public_key_from_pem(data: bytes, path: Path) -> bytes:
    if b"PUBLIC KEY" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise SignatureError(Reason.BAD_KEY_FILE, f"{path}: not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise SignatureError(Reason.BAD_KEY_FILE, f"{path}: not an Ed25519 key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Ed25519Signer.from_pem(data).public_key


def materials(environ_file: str | None = None) -> MaterialList:
    """The material list, extended by the JSON file named in CEHUB_MATERIALS_FILE if any."""
    catalogue = default_materials()
    if environ_file:
        content = json.loads(Path(environ_file).read_text(encoding="utf-8"))
        catalogue = catalogue.extended(content, source=environ_file)
    return catalogue


def rule_context(settings: Settings, materials_file: str | None = None) -> RuleContext:
    """The rules' context: the authority key and the material groups."""
    public_key = authority_public_key(settings)
    authority = KnownKey(key_id_for(public_key), HUB_PRODUCER_ID, public_key, authority=True)
    catalogue = materials(materials_file)

    def group(code: str) -> str | None:
        return catalogue.group_of(code) if code in catalogue else None

    return RuleContext(authority_keys=(authority,), material_group=group)


def ledger_key(settings: Settings) -> Ed25519PrivateKey:
    """The ledger's checkpoint-signing key; generated (0600) on first use when missing.

    Raises:
        SignatureError(BAD_KEY_FILE): the file exists but is not an Ed25519 private key.
    """
    path = settings.effective_ledger_key
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(Ed25519Signer.generate().to_pem())
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise SignatureError(Reason.BAD_KEY_FILE, f"{path}: not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(Reason.BAD_KEY_FILE, f"{path}: not an Ed25519 key")
    return key


def open_store(settings: Settings) -> LedgerStore:
    """The ledger store at the settings' database URL, migrated to the current schema."""
    return LedgerStore(open_engine(settings.effective_database_url))
