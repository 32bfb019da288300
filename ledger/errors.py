"""The one error tree of CE Hub Ledger.

Every failure the project reports is a :class:`LedgerError`. The tree has two halves, because
callers must treat them differently (as python-tuf and httpx do)::

    LedgerError
    ├── DataError                 the bytes or the claim are bad: never retried; dead-lettered
    │   │                         on cehub.rejected with their reason code
    │   ├── InputError            a line of an emitter's input file (names line and field)
    │   ├── EncodingError         malformed envelope, unknown schema, Avro that does not decode
    │   ├── SignatureError        bad signature, unknown or revoked key
    │   ├── ChainError            an entry whose hash does not link to its predecessor
    │   │   └── AuditError        (ledger/audit.py) the store diverges from its entries
    │   ├── ProofError            Merkle inclusion / consistency proof, checkpoint note
    │   ├── RuleViolation         a business rule of the supply chain (DESIGN.md section 5)
    │   └── CertificateError      a recycled-content certificate that does not verify
    │       ├── CertificateCheckFailed   (verification/certificate.py) names check and seq
    │       ├── ProvenanceError          (verification/graph.py) evidence graph incomplete
    │       └── MassBalanceError         (verification/claims.py) credit replay fails
    └── InfrastructureError       the world failed, not the data: retried, never dead-lettered
        ├── StoreError            the SQL store (SQLAlchemy errors are translated into this)
        └── TransportError        Kafka (kafka-python / aiokafka errors are translated into this)

Each concrete failure carries a stable :class:`Reason` code. Codes reach the rejected topic,
the CLI's output and the database; they never change meaning once released. Foreign
exceptions (SQLAlchemy, Kafka, fastavro, cryptography) are translated at the adapter edge and
never escape it.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Stable reason codes. Append new codes; never rename or reuse one."""

    # input files (emitter)
    INVALID_FIELD = "input.invalid_field"
    MISSING_FIELD = "input.missing_field"
    UNKNOWN_EVENT_TYPE = "input.unknown_event_type"
    BAD_MASS = "input.bad_mass"
    UNKNOWN_MATERIAL = "input.unknown_material"
    NAIVE_TIMESTAMP = "input.naive_timestamp"
    # encoding
    MALFORMED_ENVELOPE = "encoding.malformed_envelope"
    UNKNOWN_SCHEMA = "encoding.unknown_schema"
    UNDECODABLE_PAYLOAD = "encoding.undecodable_payload"
    WRONG_PAYLOAD_TYPE = "encoding.wrong_payload_type"
    # signatures and keys
    BAD_SIGNATURE = "signature.bad"
    UNKNOWN_KEY = "signature.unknown_key"
    REVOKED_KEY = "signature.revoked_key"
    KEY_NOT_AUTHORISED = "signature.key_not_authorised"
    BAD_KEY_FILE = "signature.bad_key_file"
    # chain and proofs
    CHAIN_BROKEN = "chain.broken"
    INCLUSION_PROOF_INVALID = "proof.inclusion_invalid"
    CONSISTENCY_PROOF_INVALID = "proof.consistency_invalid"
    CHECKPOINT_INVALID = "proof.checkpoint_invalid"
    CHECKPOINT_FORK = "proof.checkpoint_fork"
    CHECKPOINT_ROLLBACK = "proof.checkpoint_rollback"
    # business rules (DESIGN.md section 5)
    DUPLICATE_EVENT = "rule.duplicate_event"
    SEQUENCE_REPLAY = "rule.sequence_replay"
    UNKNOWN_PARTICIPANT = "rule.unknown_participant"
    DUPLICATE_PARTICIPANT = "rule.duplicate_participant"
    NOT_AUTHORITY = "rule.not_authority"
    WRONG_OWNER = "rule.wrong_owner"
    UNKNOWN_BATCH = "rule.unknown_batch"
    DUPLICATE_BATCH = "rule.duplicate_batch"
    DOUBLE_SPEND = "rule.double_spend"
    UNKNOWN_SHIPMENT = "rule.unknown_shipment"
    DUPLICATE_SHIPMENT = "rule.duplicate_shipment"
    RECEIPT_ABOVE_SHIPPED = "rule.receipt_above_shipped"
    WRONG_RECEIVER = "rule.wrong_receiver"
    OUTPUT_EXCEEDS_INPUT = "rule.output_exceeds_input"
    INVALID_COMPOSITION = "rule.invalid_composition"
    CREDIT_EXCEEDED = "rule.credit_exceeded"
    NOT_CERTIFIER = "rule.not_certifier"
    UNKNOWN_CERTIFICATE = "rule.unknown_certificate"
    # certificates
    CERTIFICATE_INVALID = "certificate.invalid"
    CLAIM_MISMATCH = "certificate.claim_mismatch"
    # audit
    PROJECTION_MISMATCH = "audit.projection_mismatch"
    REPLAY_DIVERGED = "audit.replay_diverged"
    # infrastructure
    STORE_FAILED = "infra.store_failed"
    TRANSPORT_FAILED = "infra.transport_failed"


class LedgerError(Exception):
    """Root of every error this project raises on purpose."""

    reason: Reason

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def diagnostics(self) -> str:
        """A human explanation for the CLI: what failed and why, without a traceback."""
        return f"[{self.reason}] {self.message}"


class DataError(LedgerError):
    """The data is bad. Retrying cannot help; the input is rejected with its reason."""


class InputError(DataError):
    """One line of an emitter's input file is invalid."""

    def __init__(
        self, reason: Reason, message: str, *, line: int | None = None, field: str | None = None
    ) -> None:
        super().__init__(reason, message)
        self.line = line
        self.field = field

    def diagnostics(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message} [{self.reason}]" if prefix else super().diagnostics()


class EncodingError(DataError):
    """Bytes that are not a well-formed envelope or event."""


class SignatureError(DataError):
    """A signature that does not verify, or a key that may not sign."""


class ChainError(DataError):
    """A stored entry that does not link to its predecessor."""


class ProofError(DataError):
    """A Merkle proof or a checkpoint that does not verify."""


class RuleViolation(DataError):
    """An event that breaks a business rule of the ledger."""


class CertificateError(DataError):
    """A recycled-content certificate that does not verify."""


class InfrastructureError(LedgerError):
    """The infrastructure failed (database, broker). Retry; never dead-letter."""


class StoreError(InfrastructureError):
    """The SQL store failed; carries the translated SQLAlchemy error as __cause__."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.STORE_FAILED, message)


class TransportError(InfrastructureError):
    """The Kafka transport failed; carries the translated client error as __cause__."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.TRANSPORT_FAILED, message)
