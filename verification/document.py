"""The certificate document's JSON shape, canonical form and digests (DESIGN.md section 6).

A certificate is one JSON object (docs/certificates.md shows every member)::

    {"format": "cehub.certificate", "version": 1, "certificate_id": ..., "issued_at": ...,
     "claim": {...}, "evidence": [{"seq", "envelope", "inclusion_proof"}], "key_events": [...],
     "checkpoint": {"note": ...}, "certifier": {"participant_id", "key_id"}, "signature": ...}

Bytes travel as standard base64 (RFC 4648 section 4), times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``
(UTC), percentages as decimal strings with two places (JSON numbers are binary floats; RFC
8785 would print ``24.75`` faithfully, but a reader's parser might not keep it exact), masses
and seqs as JSON integers (I-JSON range, below 2**53: 9 million tonnes in grams).

The certifier signs the RFC 8785 (JCS) canonical form of the document without its
``signature`` member (:func:`signing_input`). The certificate's digest, which the ledger's
``CertificateIssued`` records, is SHA-256 over the canonical form of the whole document,
signature included (:func:`certificate_sha256`); its first 8 bytes are the short
verification code printed on the human-readable rendering.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import rfc8785

from ledger.errors import CertificateError, Reason
from verification.claims import MASS_BALANCE_STATEMENT, Claim, CreditHistory

FORMAT = "cehub.certificate"
VERSION = 1
SIGNATURE_MEMBER = "signature"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str) -> bytes:
    """Strict standard base64 (canonical padding, no whitespace).

    Raises:
        CertificateError: (CERTIFICATE_INVALID) not a base64 string.
    """
    if isinstance(text, str):
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
        else:
            if b64(data) == text:
                return data
    raise CertificateError(Reason.CERTIFICATE_INVALID, f"{what} is not canonical base64")


def time_text(moment: datetime) -> str:
    """A UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(document: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical JSON of ``document``.

    Raises:
        CertificateError: (CERTIFICATE_INVALID) a value JCS cannot represent exactly (an
            integer beyond 2**53, a non-finite float, a non-JSON type).
    """
    try:
        return bytes(rfc8785.dumps(document))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CertificateError(
            Reason.CERTIFICATE_INVALID, f"the document has no RFC 8785 canonical form: {exc}"
        ) from None


def signing_input(document: Mapping[str, Any]) -> bytes:
    """What the certifier signs: the canonical form without the ``signature`` member."""
    return canonical({k: v for k, v in document.items() if k != SIGNATURE_MEMBER})


def certificate_sha256(document: Mapping[str, Any]) -> bytes:
    """SHA-256 of the canonical form of the whole (signed) document."""
    return hashlib.sha256(canonical(document)).digest()


def verification_code(digest: bytes) -> str:
    """The first 8 bytes of the certificate's SHA-256 as 4 groups of 4 hex digits."""
    text = digest[:8].hex().upper()
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


def log_item(seq: int, envelope: bytes, proof: Sequence[bytes]) -> dict[str, Any]:
    """An evidence or key-event member: the entry's seq, its envelope and inclusion proof."""
    return {"seq": seq, "envelope": b64(envelope), "inclusion_proof": [b64(h) for h in proof]}


def claim_json(claim: Claim) -> dict[str, Any]:
    """The ``claim`` member of a certificate: what verify-cert recomputes and compares."""
    return {
        "batch_id": claim.batch_id,
        "holder_id": claim.holder_id,
        "material": claim.material,
        "mass_g": claim.mass_g,
        "pre_consumer_g": claim.pre_consumer_g,
        "post_consumer_g": claim.post_consumer_g,
        "pre_consumer_pct": f"{claim.pre_consumer_pct:.2f}",
        "post_consumer_pct": f"{claim.post_consumer_pct:.2f}",
        "custody_model": claim.custody_model.value,
        "chain_models": [
            {
                "transformation_id": step.transformation_id,
                "seq": step.seq,
                "owner_id": step.owner_id,
                "site_id": step.site_id,
                "process": step.process.value,
                "custody_model": step.custody_model.value,
            }
            for step in claim.chain
        ],
        "model_reason": claim.model_reason,
        "period_start": time_text(claim.period_start),
        "period_end": time_text(claim.period_end),
        "mass_balance": _mass_balance_json(claim.mass_balance),
    }


def _mass_balance_json(histories: Sequence[CreditHistory]) -> dict[str, Any] | None:
    if not histories:
        return None
    return {
        "statement": MASS_BALANCE_STATEMENT,
        "accounts": [
            {
                "site_id": h.account.site_id,
                "material_group": h.account.material_group,
                "period": h.account.period,
                "up_to_seq": h.up_to_seq,
                "movements": [
                    {
                        "seq": m.seq,
                        "transformation_id": m.transformation_id,
                        "added_pre_consumer_g": m.added_pre_g,
                        "added_post_consumer_g": m.added_post_g,
                        "drawn_pre_consumer_g": m.drawn_pre_g,
                        "drawn_post_consumer_g": m.drawn_post_g,
                        "balance_pre_consumer_g": m.balance_pre_g,
                        "balance_post_consumer_g": m.balance_post_g,
                    }
                    for m in h.movements
                ],
            }
            for h in histories
        ],
    }
