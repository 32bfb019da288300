"""Certificates (verification/certificate.py, DESIGN.md section 6): build, verify, tamper.

A real certificate is built from a MemoryLedger scenario (tests/certificates.py) with a
checkpoint signed over the tree of the entries' envelopes, then verified with nothing but a
trust. Then a byte is flipped in every part of it, and each tampering must fail the check that
guards that part, naming the evidence item. Attacks that need a dishonest ledger or certifier
(a log that includes an event signed by a revoked key, a re-signed false claim) are built on
purpose and must fail the deeper checks.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from ledger.checkpoint import note_verifier_key
from ledger.errors import CertificateError, InputError, Reason
from ledger.merkle import MemoryNodeStore, leaf_hash
from schemas.events import CustodyModel, Role
from tests.builders import Actor, Hub, material_group, seeded_signer
from tests.certificates import (
    ORIGIN,
    Chain,
    certify,
    certify_selection,
    supply_chain,
    trust_for,
)
from verification.certificate import (
    CertificateCheckFailed,
    Check,
    VerificationReport,
    document_problem,
    verify_certificate,
)
from verification.document import certificate_sha256, signing_input, verification_code
from verification.evidence import Selection
from verification.trust import Trust, parse_trust, trust_json

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def chain() -> Chain:
    return supply_chain()


@pytest.fixture(scope="module")
def document(chain: Chain) -> Doc:
    cert = certify(chain.ledger, "m/p2", chain.certifier)
    return json.loads(json.dumps(cert.document))  # exactly what a file holds


@pytest.fixture(scope="module")
def trust(chain: Chain) -> Trust:
    return trust_for(chain.hub)


def failure(document: Doc, trust: Trust) -> CertificateCheckFailed:
    with pytest.raises(CertificateCheckFailed) as info:
        verify_certificate(document, trust)
    return info.value


def flip(text: str, index: int) -> str:
    """The base64 ``text`` with one bit of its decoded byte ``index`` flipped."""
    data = bytearray(base64.b64decode(text))
    data[index % len(data)] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


def resigned(document: Doc, signer: Actor) -> Doc:
    """``document`` signed again by ``signer`` (a dishonest certifier)."""
    document = copy.deepcopy(document)
    document["signature"] = base64.b64encode(signer.signer.sign(signing_input(document))).decode()
    return document


# --- a valid certificate ----------------------------------------------------------------------


def test_certificate_verifies_offline_and_states_the_claim(document: Doc, trust: Trust) -> None:
    report = verify_certificate(document, trust)
    assert isinstance(report, VerificationReport)
    claim = report.claim
    assert (claim.batch_id, claim.holder_id, claim.material) == ("m/p2", "compounder", "PET_PELLET")
    # m/t2 claimed 500 000 g post-consumer of 1 000 000 g.
    assert (claim.mass_g, claim.post_consumer_pct, claim.pre_consumer_pct) == (
        1_000_000,
        Decimal("50.00"),
        Decimal("0.00"),
    )
    assert claim.custody_model is CustodyModel.MASS_BALANCE
    assert [s.custody_model for s in claim.chain] == [
        CustodyModel.SEGREGATION,
        CustodyModel.MASS_BALANCE,
    ]
    (account,) = claim.mass_balance
    # T1 (not upstream of m/p2) fed the credit: +450 000 -300 000, then T2 +360 000 -500 000.
    assert [(m.transformation_id, m.balance_post_g) for m in account.movements] == [
        ("m/t1", 150_000),
        ("m/t2", 10_000),
    ]
    assert [r.check for r in report.checks] == list(Check)
    assert report.checkpoint.origin == ORIGIN
    assert report.code == verification_code(certificate_sha256(document))
    assert document["claim"]["post_consumer_pct"] == "50.00"
    assert document["issued_at"] == "2026-06-30T12:00:00.000000Z"


def test_evidence_carries_the_provenance_credit_events_and_key_events(
    chain: Chain, document: Doc
) -> None:
    types = {
        item["seq"]: chain.ledger.entries[item["seq"]].event_type for item in document["evidence"]
    }
    assert sorted(types.values()).count("BatchTransformed") == 3  # wash, T1 (credit), T2
    key_types = [chain.ledger.entries[i["seq"]].event_type for i in document["key_events"]]
    assert key_types.count("ParticipantEnrolled") == 4  # collector, recycler, compounder, certifier
    assert "KeyRotated" in key_types


def test_building_is_deterministic(chain: Chain, document: Doc) -> None:
    again = certify(chain.ledger, "m/p2", chain.certifier)
    assert json.loads(json.dumps(again.document)) == document


def test_key_revoked_after_the_evidence_does_not_invalidate_it() -> None:
    chain = supply_chain()
    chain.ledger.append(chain.hub.revoke_key(chain.actors["collector"]))
    document = certify(chain.ledger, "m/p2", chain.certifier).document
    assert "KeyRevoked" in [
        chain.ledger.entries[i["seq"]].event_type for i in document["key_events"]
    ]
    verify_certificate(document, trust_for(chain.hub))


# --- a flipped byte in every part -------------------------------------------------------------


def test_flipped_byte_in_any_evidence_envelope_fails_its_inclusion_proof(
    document: Doc, trust: Trust
) -> None:
    for index, item in enumerate(document["evidence"]):
        length = len(base64.b64decode(item["envelope"]))
        for position in (0, 1, length // 2, length - 1):
            tampered = copy.deepcopy(document)
            tampered["evidence"][index]["envelope"] = flip(item["envelope"], position)
            error = failure(tampered, trust)
            assert (error.check, error.seq, error.part) == (
                Check.INCLUSION,
                item["seq"],
                "evidence",
            )
            assert error.reason is Reason.INCLUSION_PROOF_INVALID


def test_flipped_byte_in_any_proof_hash_fails_that_inclusion_proof(
    document: Doc, trust: Trust
) -> None:
    for part, name in (("key_events", "key event"), ("evidence", "evidence")):
        for index, item in enumerate(document[part]):
            for h, text in enumerate(item["inclusion_proof"]):
                tampered = copy.deepcopy(document)
                tampered[part][index]["inclusion_proof"][h] = flip(text, h)
                error = failure(tampered, trust)
                assert (error.check, error.seq, error.part) == (Check.INCLUSION, item["seq"], name)


def test_flipped_byte_in_any_key_event_fails_its_inclusion_proof(
    document: Doc, trust: Trust
) -> None:
    for index, item in enumerate(document["key_events"]):
        tampered = copy.deepcopy(document)
        tampered["key_events"][index]["envelope"] = flip(item["envelope"], 40)
        error = failure(tampered, trust)
        assert (error.check, error.seq, error.part) == (Check.INCLUSION, item["seq"], "key event")


def test_flipped_byte_in_the_checkpoint_note_fails_its_signature(
    document: Doc, trust: Trust
) -> None:
    note = document["checkpoint"]["note"]
    for position in range(len(note)):
        if note[position] in "\n—" or not (chr(ord(note[position]) ^ 1)).isprintable():
            continue
        tampered = copy.deepcopy(document)
        changed = chr(ord(note[position]) ^ 1)
        tampered["checkpoint"]["note"] = note[:position] + changed + note[position + 1 :]
        assert failure(tampered, trust).check is Check.CHECKPOINT, position


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("mass_g", 1_000_001),
        ("post_consumer_g", 500_001),
        ("post_consumer_pct", "50.01"),
        ("pre_consumer_pct", "0.01"),
        ("custody_model", "SEGREGATION"),
        ("holder_id", "somebody-else"),
        ("period_end", "2026-09-30T00:00:00.000000Z"),
    ],
)
def test_changed_claim_fails_the_certifier_signature_and_if_resigned_the_claim_check(
    document: Doc, trust: Trust, chain: Chain, member: str, value: object
) -> None:
    tampered = copy.deepcopy(document)
    tampered["claim"][member] = value
    assert failure(tampered, trust).check is Check.CERTIFIER_SIGNATURE
    error = failure(resigned(tampered, chain.certifier), trust)
    assert (error.check, error.reason) == (Check.CLAIM, Reason.CLAIM_MISMATCH)
    assert member in error.message


def test_flipped_byte_in_the_certifier_signature_fails_it(document: Doc, trust: Trust) -> None:
    for position in (0, 31, 63):
        tampered = copy.deepcopy(document)
        tampered["signature"] = flip(document["signature"], position)
        error = failure(tampered, trust)
        assert (error.check, error.reason) == (Check.CERTIFIER_SIGNATURE, Reason.BAD_SIGNATURE)


def test_changed_certificate_id_or_issue_time_fails_the_certifier_signature(
    document: Doc, trust: Trust
) -> None:
    for member, value in (("certificate_id", "certifier/cert-2"), ("issued_at", "2027")):
        tampered = {**copy.deepcopy(document), member: value}
        assert failure(tampered, trust).check is Check.CERTIFIER_SIGNATURE


def test_other_trusted_keys_reject_the_checkpoint_and_the_key_chain(
    document: Doc, trust: Trust
) -> None:
    another_hub = Hub(authority=seeded_signer("another hub"))
    error = failure(document, trust_for(another_hub))
    assert (error.check, error.reason) == (Check.KEY_AUTHORISATION, Reason.UNKNOWN_KEY)
    other_log = note_verifier_key("other.cehub/ledger", seeded_signer("other log").public_key)
    other_trust = parse_trust(trust_json([other_log], trust.authority_keys, {}))
    assert failure(document, other_trust).check is Check.CHECKPOINT


# --- dishonest certifier or ledger ------------------------------------------------------------


def _edit(document: Doc, chain: Chain, change: Callable[[Doc], None]) -> Doc:
    tampered = copy.deepcopy(document)
    change(tampered)
    return resigned(tampered, chain.certifier)


def test_missing_rotation_leaves_the_new_key_unauthorised(
    document: Doc, trust: Trust, chain: Chain
) -> None:
    rotation = next(
        i
        for i in document["key_events"]
        if chain.ledger.entries[i["seq"]].event_type == "KeyRotated"
    )
    tampered = _edit(document, chain, lambda d: d["key_events"].remove(rotation))
    error = failure(tampered, trust)
    assert (error.check, error.reason, error.part) == (
        Check.EVIDENCE_SIGNATURE,
        Reason.UNKNOWN_KEY,
        "evidence",
    )
    assert error.seq is not None
    assert error.seq > rotation["seq"]


def test_missing_evidence_entry_breaks_the_provenance_graph(
    document: Doc, trust: Trust, chain: Chain
) -> None:
    receipt = next(
        i
        for i in document["evidence"]
        if chain.ledger.entries[i["seq"]].event_type == "BatchReceived"
    )
    error = failure(_edit(document, chain, lambda d: d["evidence"].remove(receipt)), trust)
    assert error.check is Check.PROVENANCE
    assert error.seq is not None
    assert error.seq > receipt["seq"]


def test_missing_credit_event_shows_as_an_overdrawn_account(
    document: Doc, trust: Trust, chain: Chain
) -> None:
    t1 = next(
        i
        for i in document["evidence"]
        if chain.ledger.entries[i["seq"]].event_type == "BatchTransformed"
        and b"m/t1" in base64.b64decode(i["envelope"])
    )
    error = failure(_edit(document, chain, lambda d: d["evidence"].remove(t1)), trust)
    assert (error.check, error.reason) == (Check.MASS_BALANCE, Reason.CREDIT_EXCEEDED)


def test_certifier_must_be_enrolled_as_a_certifier(chain: Chain, trust: Trust) -> None:
    compounder = chain.actors["compounder"]
    cert = certify(chain.ledger, "m/p2", compounder)
    error = failure(json.loads(json.dumps(cert.document)), trust)
    assert (error.check, error.reason) == (Check.CERTIFIER, Reason.NOT_CERTIFIER)


def test_certifier_with_a_revoked_key_cannot_certify() -> None:
    chain = supply_chain()
    chain.ledger.append(chain.hub.revoke_key(chain.certifier))
    with pytest.raises(CertificateError) as info:
        certify(chain.ledger, "m/p2", chain.certifier)
    assert info.value.reason is Reason.REVOKED_KEY


def test_evidence_signed_by_a_key_revoked_before_it_fails() -> None:
    """A dishonest log that appended an event signed by an already revoked key."""
    hub = Hub()
    collector = hub.actor("collector", Role.COLLECTOR)
    certifier = hub.actor("certifier", Role.CERTIFIER)
    envelopes = [
        hub.enrol(collector),
        hub.enrol(certifier),
        hub.revoke_key(collector),
        hub.create_batch(collector, "c/bale-1", 1_000, post=1_000),
    ]
    tree = MemoryNodeStore()
    for envelope in envelopes:
        tree.append(leaf_hash(envelope))
    selection = Selection(("c/bale-1",), (3,), (0, 1, 2), 4)
    cert = certify_selection(envelopes, tree.get_node, 4, selection, "c/bale-1", certifier)
    error = failure(json.loads(json.dumps(cert.document)), trust_for(hub))
    assert (error.check, error.seq, error.part, error.reason) == (
        Check.EVIDENCE_SIGNATURE,
        3,
        "evidence",
        Reason.REVOKED_KEY,
    )
    assert [r.check for r in error.passed] == [Check.FORMAT, Check.CHECKPOINT, Check.INCLUSION]


# --- unusable and malformed input ---------------------------------------------------------------


def test_document_problem_tells_unusable_input_apart(document: Doc) -> None:
    assert document_problem(document) is None
    assert document_problem([]) is not None
    assert "not a certificate" in str(document_problem({"format": "x"}))
    assert "version" in str(document_problem({**document, "version": 2}))


def test_malformed_member_fails_the_format_check(document: Doc, trust: Trust) -> None:
    for change in (
        lambda d: d.pop("claim"),
        lambda d: d["evidence"][0].update(envelope="not base64!"),
        lambda d: d["evidence"][0].update(seq=True),
        lambda d: d["key_events"].append(d["evidence"][0]),
    ):
        tampered = copy.deepcopy(document)
        change(tampered)
        assert failure(tampered, trust).check is Check.FORMAT


def test_checkpoint_that_does_not_cover_the_evidence_is_refused(chain: Chain) -> None:
    with pytest.raises(CertificateError, match="covers"):
        certify(chain.ledger, "m/p2", chain.certifier, size=5)


def test_trust_file_round_trips_and_rejects_nonsense(trust: Trust) -> None:
    vkeys = [note_verifier_key(k.name, k.public_key) for k in trust.ledger_keys]
    content = trust_json(vkeys, trust.authority_keys, {"MY_RESIN": "plastics.PP"})
    parsed = parse_trust(json.loads(json.dumps(content)))
    assert parsed.ledger_keys == trust.ledger_keys
    assert parsed.material_group("MY_RESIN") == "plastics.PP"
    assert parsed.material_group("PET_FLAKE") == material_group("PET_FLAKE")
    for bad in ({}, {**content, "version": 9}, {**content, "hub_authority_keys": ["AA=="]}):
        with pytest.raises(InputError):
            parse_trust(bad)
