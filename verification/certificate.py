"""Recycled-content certificates: build and sign one, verify one offline (DESIGN.md section 6).

:func:`build_certificate` assembles the document of ``verification/document.py`` from entries
the caller selected (``verification/evidence.py``), their inclusion proofs against one signed
checkpoint, and the certifier's signature. :func:`verify_certificate` checks a document with
nothing but a :class:`~verification.trust.Trust`: no network, no database, no clock. It runs
the checks of :class:`Check` in that order and stops at the first that fails, raising
:class:`CertificateCheckFailed` with the check, the item (evidence or key event, by seq) and
a stable reason code; on success it returns a :class:`VerificationReport`.

The order goes from the trust anchors inwards: the checkpoint is signed by a trusted ledger
key; every entry is in the tree that checkpoint commits to (RFC 9162 section 2.1.3.2); the
key events, replayed in ledger order from the hub authority key, authorise every key
(``ledger/rules.py`` decides them, as the sequencer did); each evidence entry is signed by its
producer's key *as it stood at that entry* (a key revoked or rotated away before it does not
count); the certifier is enrolled as a CERTIFIER and its key active at the checkpoint; its
signature covers the document; the evidence forms a complete provenance graph; the
mass-balance accounts recompute without going negative; and the claim recomputed from the
evidence equals the stated one, member for member.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from ledger.checkpoint import Checkpoint, open_checkpoint
from ledger.envelope import VerifiedEvent, open_envelope
from ledger.errors import CertificateError, DataError, Reason
from ledger.merkle import GetNode, inclusion_proof, leaf_hash, verify_inclusion
from ledger.rules import LedgerKeyring, RuleContext, decide
from ledger.signing import Signer, verify_signature
from ledger.state import KeyStatus, MemoryState
from schemas.events import (
    BatchCreated,
    BatchReceived,
    BatchShipped,
    BatchTransformed,
    Event,
    KeyRevoked,
    KeyRotated,
    ParticipantEnrolled,
    Role,
)
from verification.claims import Claim, MassBalanceError, MaterialGroup, compute_claim
from verification.document import (
    FORMAT,
    SIGNATURE_MEMBER,
    VERSION,
    b64,
    certificate_sha256,
    claim_json,
    log_item,
    signing_input,
    time_text,
    unb64,
    verification_code,
)
from verification.evidence import Selection, decode_entries
from verification.graph import ProvenanceError, ProvenanceGraph
from verification.trust import Trust

EVIDENCE = "evidence"
KEY_EVENT = "key event"
_KEY_EVENTS = (ParticipantEnrolled, KeyRotated, KeyRevoked)
_BATCH_EVENTS = (BatchCreated, BatchShipped, BatchReceived, BatchTransformed)


class Check(enum.StrEnum):
    """What :func:`verify_certificate` checks, in the order it checks it."""

    FORMAT = "format"
    CHECKPOINT = "checkpoint-signature"
    INCLUSION = "inclusion-proof"
    KEY_AUTHORISATION = "key-authorisation"
    EVIDENCE_SIGNATURE = "evidence-signature"
    CERTIFIER = "certifier"
    CERTIFIER_SIGNATURE = "certifier-signature"
    PROVENANCE = "provenance"
    MASS_BALANCE = "mass-balance"
    CLAIM = "claim"


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    detail: str


class CertificateCheckFailed(CertificateError):
    """A certificate failed ``check``; ``seq`` and ``part`` name the item when there is one."""

    def __init__(
        self,
        check: Check,
        message: str,
        *,
        reason: Reason = Reason.CERTIFICATE_INVALID,
        seq: int | None = None,
        part: str | None = None,
    ) -> None:
        super().__init__(reason, message)
        self.check = check
        self.seq = seq
        self.part = part
        self.passed: tuple[CheckResult, ...] = ()
        """The checks that passed before this one (for the readable report)."""

    @property
    def item(self) -> str | None:
        """``"evidence seq 7"`` / ``"key event seq 2"``, or None."""
        return None if self.seq is None else f"{self.part or EVIDENCE} seq {self.seq}"

    def diagnostics(self) -> str:
        where = f" ({self.item})" if self.item else ""
        return f"check {self.check.value} failed{where}: {self.message} [{self.reason}]"


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """What a valid certificate proves, for the readable report."""

    certificate_id: str
    issued_at: str
    claim: Claim
    graph: ProvenanceGraph
    checkpoint: Checkpoint
    certifier_id: str
    certifier_key_id: str
    sha256: bytes
    checks: tuple[CheckResult, ...]

    @property
    def code(self) -> str:
        return verification_code(self.sha256)


@dataclass(frozen=True, slots=True)
class Certificate:
    """A signed certificate document with what it claims and the graph it was computed on."""

    document: Mapping[str, Any]
    claim: Claim
    graph: ProvenanceGraph
    sha256: bytes

    @property
    def code(self) -> str:
        return verification_code(self.sha256)


# --- building ----------------------------------------------------------------------------------


def build_certificate(
    *,
    certificate_id: str,
    batch_id: str,
    selection: Selection,
    envelopes: Mapping[int, bytes],
    checkpoint_note: bytes,
    checkpoint_size: int,
    get_node: GetNode,
    certifier_id: str,
    signer: Signer,
    issued_at: datetime,
    material_group: MaterialGroup,
) -> Certificate:
    """Build and sign the certificate of ``batch_id`` over ``selection``'s entries, proven
    against the checkpoint ``checkpoint_note`` of ``checkpoint_size`` entries (whose stored
    tree ``get_node`` reads). Key events after the checkpoint are left out.

    Raises:
        CertificateError: the checkpoint does not cover the selection.
        ProvenanceError, MassBalanceError: the claim cannot be computed.
    """
    if checkpoint_size < selection.required_size:
        raise CertificateError(
            Reason.CERTIFICATE_INVALID,
            f"the checkpoint covers {checkpoint_size} entries; the evidence needs "
            f"{selection.required_size}",
        )
    key_seqs = [seq for seq in selection.key_event_seqs if seq < checkpoint_size]
    all_seqs = sorted({*selection.evidence_seqs, *key_seqs})
    graph = ProvenanceGraph.from_events(decode_entries({s: envelopes[s] for s in all_seqs}))
    claim = compute_claim(graph, batch_id, material_group)

    def items(seqs: Sequence[int]) -> list[dict[str, Any]]:
        return [
            log_item(s, envelopes[s], inclusion_proof(s, checkpoint_size, get_node)) for s in seqs
        ]

    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "certificate_id": certificate_id,
        "issued_at": time_text(issued_at),
        "claim": claim_json(claim),
        "evidence": items(selection.evidence_seqs),
        "key_events": items(key_seqs),
        "checkpoint": {"note": checkpoint_note.decode("utf-8")},
        "certifier": {"participant_id": certifier_id, "key_id": signer.key_id},
    }
    document[SIGNATURE_MEMBER] = b64(signer.sign(signing_input(document)))
    return Certificate(document, claim, graph, certificate_sha256(document))


# --- verifying ---------------------------------------------------------------------------------


def document_problem(document: object) -> str | None:
    """Why ``document`` is not a certificate this code can check at all, or None.

    An unusable input (exit 2 in ``cehub verify-cert``), as opposed to an invalid certificate.
    """
    if not isinstance(document, dict):
        return "the file does not hold a JSON object"
    if document.get("format") != FORMAT:
        return f"not a certificate (format is {document.get('format')!r}, not {FORMAT!r})"
    if document.get("version") != VERSION:
        return f"certificate version {document.get('version')!r} is not supported ({VERSION})"
    return None


@dataclass(frozen=True, slots=True)
class _Item:
    seq: int
    envelope: bytes
    proof: tuple[bytes, ...]
    part: str


@dataclass(frozen=True, slots=True)
class _Parsed:
    certificate_id: str
    issued_at: str
    claim: Mapping[str, Any]
    items: tuple[_Item, ...]
    note: bytes
    certifier_id: str
    certifier_key_id: str
    signature: bytes

    def of(self, part: str) -> tuple[_Item, ...]:
        return tuple(item for item in self.items if item.part == part)


def verify_certificate(document: Mapping[str, Any], trust: Trust) -> VerificationReport:
    """Check ``document`` offline against ``trust`` (module docstring); pure.

    Raises:
        CertificateCheckFailed: the first check that fails, with its item and reason code.
    """
    passed: list[CheckResult] = []
    try:
        return _verify(document, trust, passed)
    except CertificateCheckFailed as failure:
        failure.passed = tuple(passed)
        raise


_T = TypeVar("_T")


def _step(check: Check, run: Callable[[], _T]) -> _T:
    """Run one check; a DataError becomes a failure of ``check`` (with its seq if it has one)."""
    try:
        return run()
    except CertificateCheckFailed:
        raise
    except DataError as exc:
        seq = getattr(exc, "seq", None)
        raise CertificateCheckFailed(check, exc.message, reason=exc.reason, seq=seq) from exc


def _verify(
    document: Mapping[str, Any], trust: Trust, passed: list[CheckResult]
) -> VerificationReport:
    def ok(check: Check, detail: str) -> None:
        passed.append(CheckResult(check, detail))

    parsed = _step(Check.FORMAT, lambda: _parse(document))
    evidence, keys = len(parsed.of(EVIDENCE)), len(parsed.of(KEY_EVENT))
    ok(Check.FORMAT, f"{FORMAT} version {VERSION}: {evidence} evidence entries, {keys} key events")
    checkpoint = _step(Check.CHECKPOINT, lambda: _open_checkpoint(parsed.note, trust))
    ok(
        Check.CHECKPOINT,
        f"signed by the trusted ledger key of {checkpoint.origin}; tree size "
        f"{checkpoint.size}, root {checkpoint.root_hash.hex()[:16]}...",
    )
    for item in parsed.items:
        _check_inclusion(item, checkpoint)
    ok(Check.INCLUSION, f"all {len(parsed.items)} entries are in the checkpoint's tree (RFC 9162)")
    state, events = _replay_signatures(parsed, trust)
    ok(Check.KEY_AUTHORISATION, f"{keys} key events replayed from the hub authority key(s)")
    ok(Check.EVIDENCE_SIGNATURE, f"{evidence} events each signed by its producer's key at its seq")
    certifier_key = _check_certifier(parsed, state, checkpoint)
    ok(
        Check.CERTIFIER,
        f"{parsed.certifier_id} enrolled as CERTIFIER; key {parsed.certifier_key_id} active at "
        f"tree size {checkpoint.size}",
    )
    _step(
        Check.CERTIFIER_SIGNATURE,
        lambda: verify_signature(certifier_key, parsed.signature, signing_input(document)),
    )
    ok(Check.CERTIFIER_SIGNATURE, "valid over the RFC 8785 canonical document")
    graph = _step(Check.PROVENANCE, lambda: ProvenanceGraph.from_events(events))
    batch_id = str(parsed.claim.get("batch_id"))
    upstream = _step(Check.PROVENANCE, lambda: graph.upstream(batch_id))
    ok(Check.PROVENANCE, f"complete graph of {len(upstream)} batches back to their origins")
    claim = _recompute(graph, batch_id, trust, parsed.claim, passed)
    return VerificationReport(
        certificate_id=parsed.certificate_id,
        issued_at=parsed.issued_at,
        claim=claim,
        graph=graph,
        checkpoint=checkpoint,
        certifier_id=parsed.certifier_id,
        certifier_key_id=parsed.certifier_key_id,
        sha256=certificate_sha256(document),
        checks=tuple(passed),
    )


def _recompute(
    graph: ProvenanceGraph,
    batch_id: str,
    trust: Trust,
    stated: Mapping[str, Any],
    passed: list[CheckResult],
) -> Claim:
    try:
        claim = compute_claim(graph, batch_id, trust.material_group)
    except MassBalanceError as exc:
        raise CertificateCheckFailed(
            Check.MASS_BALANCE, exc.message, reason=exc.reason, seq=exc.seq
        ) from exc
    except ProvenanceError as exc:
        raise CertificateCheckFailed(Check.PROVENANCE, exc.message, seq=exc.seq) from exc
    accounts = len(claim.mass_balance)
    passed.append(
        CheckResult(
            Check.MASS_BALANCE,
            f"{accounts} credit account(s) recomputed, never negative"
            if accounts
            else "no mass-balance step along the chain",
        )
    )
    recomputed = claim_json(claim)
    differing = sorted(k for k in {*recomputed, *stated} if recomputed.get(k) != stated.get(k))
    if differing:
        shown = "; ".join(
            f"{k}: stated {stated.get(k)!r}, evidence gives {recomputed.get(k)!r}"
            for k in differing[:3]
        )
        raise CertificateCheckFailed(Check.CLAIM, shown, reason=Reason.CLAIM_MISMATCH)
    passed.append(CheckResult(Check.CLAIM, "recomputed from the evidence: equal in every member"))
    return claim


def _parse(document: Mapping[str, Any]) -> _Parsed:
    problem = document_problem(document)
    if problem is not None:
        raise CertificateCheckFailed(Check.FORMAT, problem)
    claim = _member(document, "claim", dict)
    checkpoint = _member(document, "checkpoint", dict)
    certifier = _member(document, "certifier", dict)
    items = (
        *_items(_member(document, "evidence", list), EVIDENCE),
        *_items(_member(document, "key_events", list), KEY_EVENT),
    )
    seqs = [item.seq for item in items]
    if len(set(seqs)) != len(seqs):
        raise CertificateCheckFailed(Check.FORMAT, "an entry appears twice")
    return _Parsed(
        certificate_id=_member(document, "certificate_id", str),
        issued_at=_member(document, "issued_at", str),
        claim=claim,
        items=tuple(sorted(items, key=lambda item: item.seq)),
        note=_member(checkpoint, "note", str).encode("utf-8"),
        certifier_id=_member(certifier, "participant_id", str),
        certifier_key_id=_member(certifier, "key_id", str),
        signature=unb64(document.get(SIGNATURE_MEMBER), "signature"),
    )


def _member(container: Mapping[str, Any], name: str, kind: type[_T]) -> _T:
    value = container.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CertificateCheckFailed(
            Check.FORMAT, f"member {name!r} is missing or not a {kind.__name__}"
        )
    return value


def _items(raw: list[Any], part: str) -> list[_Item]:
    items = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise CertificateCheckFailed(Check.FORMAT, f"a {part} member is not an object")
        seq = _member(entry, "seq", int)
        proof = _member(entry, "inclusion_proof", list)
        try:
            envelope = unb64(entry.get("envelope"), f"{part} {seq} envelope")
            hashes = tuple(unb64(h, f"{part} {seq} proof hash") for h in proof)
        except CertificateError as exc:
            raise CertificateCheckFailed(Check.FORMAT, exc.message, seq=seq, part=part) from exc
        items.append(_Item(seq, envelope, hashes, part))
    return items


def _open_checkpoint(note: bytes, trust: Trust) -> Checkpoint:
    checkpoint = open_checkpoint(note, trust.ledger_keys)
    if checkpoint.origin not in {key.name for key in trust.ledger_keys}:
        raise CertificateCheckFailed(
            Check.CHECKPOINT,
            f"checkpoint of {checkpoint.origin!r}, not of a trusted ledger",
            reason=Reason.CHECKPOINT_INVALID,
        )
    return checkpoint


def _check_inclusion(item: _Item, checkpoint: Checkpoint) -> None:
    try:
        if item.seq < 0 or item.seq >= checkpoint.size:
            raise CertificateCheckFailed(
                Check.INCLUSION,
                f"entry {item.seq} is beyond the checkpoint's {checkpoint.size} entries",
                reason=Reason.INCLUSION_PROOF_INVALID,
            )
        verify_inclusion(
            leaf_hash(item.envelope), item.seq, checkpoint.size, item.proof, checkpoint.root_hash
        )
    except DataError as exc:
        raise CertificateCheckFailed(
            Check.INCLUSION, exc.message, reason=exc.reason, seq=item.seq, part=item.part
        ) from exc


def _replay_signatures(
    parsed: _Parsed, trust: Trust
) -> tuple[MemoryState, list[tuple[int, Event]]]:
    """Replay key events and evidence in ledger order: each envelope is opened against the key
    registry as it stood at its seq; key events then change the registry (``decide``)."""
    state = MemoryState()
    context = RuleContext(authority_keys=trust.authority, material_group=lambda _code: None)
    events: list[tuple[int, Event]] = []
    for item in parsed.items:
        check = Check.KEY_AUTHORISATION if item.part == KEY_EVENT else Check.EVIDENCE_SIGNATURE
        keyring = LedgerKeyring(state, trust.authority)
        try:
            verified = open_envelope(item.envelope, keyring)
            _check_kind(item, verified)
            if item.part == KEY_EVENT:
                signer = keyring.resolve(verified.key_id)
                state.apply(
                    decide(state, verified.event, signer=signer, seq=item.seq, context=context)
                )
        except DataError as exc:
            raise CertificateCheckFailed(
                check, exc.message, reason=exc.reason, seq=item.seq, part=item.part
            ) from exc
        events.append((item.seq, verified.event))
    return state, events


def _check_kind(item: _Item, verified: VerifiedEvent) -> None:
    event = verified.event
    if item.part == KEY_EVENT and not isinstance(event, _KEY_EVENTS):
        raise CertificateError(
            Reason.CERTIFICATE_INVALID, f"{type(event).__name__} is not a key event"
        )
    if item.part == EVIDENCE:
        if not isinstance(event, _BATCH_EVENTS):
            raise CertificateError(
                Reason.CERTIFICATE_INVALID, f"{type(event).__name__} is not a batch event"
            )
        if verified.signer_id != event.header.producer_id:
            raise CertificateError(
                Reason.KEY_NOT_AUTHORISED,
                f"signed by {verified.signer_id!r}, not by its producer "
                f"{event.header.producer_id!r}",
            )


def _check_certifier(parsed: _Parsed, state: MemoryState, checkpoint: Checkpoint) -> bytes:
    """The certifier's public key, once its enrolment, role and key status are checked."""

    def fail(reason: Reason, message: str) -> CertificateCheckFailed:
        return CertificateCheckFailed(Check.CERTIFIER, message, reason=reason)

    participant = state.participant(parsed.certifier_id)
    if participant is None:
        raise fail(
            Reason.UNKNOWN_PARTICIPANT,
            f"{parsed.certifier_id!r} has no ParticipantEnrolled among the key events",
        )
    if Role.CERTIFIER not in participant.roles:
        raise fail(Reason.NOT_CERTIFIER, f"{parsed.certifier_id!r} is not enrolled as a certifier")
    key = state.key(parsed.certifier_key_id)
    if key is None or key.participant_id != parsed.certifier_id:
        raise fail(
            Reason.UNKNOWN_KEY,
            f"key {parsed.certifier_key_id} is not a key of {parsed.certifier_id!r}",
        )
    if key.status is not KeyStatus.ACTIVE:
        raise fail(
            Reason.REVOKED_KEY,
            f"key {key.key_id} is {key.status.value.lower()} at tree size {checkpoint.size}",
        )
    return key.public_key
