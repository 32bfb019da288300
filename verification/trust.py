"""The trust file: what a certificate's verifier trusts, and nothing else (DESIGN.md section 6).

A buyer gets it once, out of band, from the hub operator (``cehub trust export``)::

    {
      "format": "cehub.trust",
      "version": 1,
      "ledger_verifier_keys": ["cehub.local/ledger+1a2b3c4d+AQ..."],
      "hub_authority_keys": ["<base64 of the 32-byte Ed25519 public key>"],
      "materials": {"MY_CODE": "plastics.PP"}
    }

- ``ledger_verifier_keys``: the ledger's checkpoint keys as note verifier keys
  (``golang.org/x/mod/sumdb/note`` vkey form, ``ledger/checkpoint.py``). A checkpoint note
  must carry a valid signature by one of them and name that key's origin.
- ``hub_authority_keys``: the hub authority's public keys, the root of the key registry:
  every participant key is authorised by a ``ParticipantEnrolled`` / ``KeyRotated`` chain
  signed, in the end, by one of them.
- ``materials`` (optional): material codes a deployment added to ``schemas/materials.json``
  and their mass-balance groups; the shipped list is built in.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ledger.checkpoint import NoteVerifier, parse_note_verifier_key
from ledger.envelope import KnownKey
from ledger.errors import InputError, Reason, SignatureError
from ledger.signing import key_id_for
from schemas.events import HUB_PRODUCER_ID
from schemas.materials import default_materials

TRUST_FORMAT = "cehub.trust"
TRUST_VERSION = 1


@dataclass(frozen=True, slots=True)
class Trust:
    """The trusted ledger keys, hub authority keys and extra material groups."""

    ledger_keys: tuple[NoteVerifier, ...]
    authority_keys: tuple[bytes, ...]
    materials: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def authority(self) -> tuple[KnownKey, ...]:
        """The authority keys as the key registry's roots."""
        return tuple(
            KnownKey(key_id_for(key), HUB_PRODUCER_ID, key, authority=True)
            for key in self.authority_keys
        )

    def material_group(self, code: str) -> str | None:
        """The mass-balance group of a material code: the shipped list, then ``materials``."""
        catalogue = default_materials()
        return catalogue.group_of(code) if code in catalogue else self.materials.get(code)


def trust_json(
    ledger_vkeys: Sequence[str], authority_keys: Sequence[bytes], materials: Mapping[str, str]
) -> dict[str, Any]:
    """The trust file's content."""
    content: dict[str, Any] = {
        "format": TRUST_FORMAT,
        "version": TRUST_VERSION,
        "ledger_verifier_keys": list(ledger_vkeys),
        "hub_authority_keys": [base64.b64encode(key).decode("ascii") for key in authority_keys],
    }
    if materials:
        content["materials"] = dict(sorted(materials.items()))
    return content


def parse_trust(content: object) -> Trust:
    """A :class:`Trust` from a trust file's parsed JSON.

    Raises:
        InputError: not a trust file, or a key that does not parse (the trust file is
            unusable input, not an invalid certificate).
    """
    if not isinstance(content, dict) or content.get("format") != TRUST_FORMAT:
        raise _bad("format", f"not a trust file (format must be {TRUST_FORMAT!r})")
    if content.get("version") != TRUST_VERSION:
        raise _bad("version", f"unsupported trust file version {content.get('version')!r}")
    vkeys = _strings(content, "ledger_verifier_keys")
    authority = _strings(content, "hub_authority_keys")
    try:
        ledger_keys = tuple(parse_note_verifier_key(vkey) for vkey in vkeys)
    except SignatureError as exc:
        raise _bad("ledger_verifier_keys", exc.message) from None
    materials = content.get("materials", {})
    if not isinstance(materials, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in materials.items()
    ):
        raise _bad("materials", "must map material codes to group names")
    return Trust(
        ledger_keys,
        tuple(_raw_key(text) for text in authority),
        MappingProxyType(dict(materials)),
    )


def _strings(content: Mapping[str, Any], name: str) -> list[str]:
    value = content.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _bad(name, "must be a non-empty list of strings")
    return value


def _raw_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise _bad("hub_authority_keys", f"{text!r} is not a base64 32-byte Ed25519 key")
    return raw


def _bad(member: str, message: str) -> InputError:
    return InputError(Reason.INVALID_FIELD, f"trust file, {member!r}: {message}", field=member)
