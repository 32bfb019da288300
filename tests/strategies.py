"""Hypothesis strategies for valid CE Hub Ledger records, for every test module to import.

Valid means: the record can be built and encoded (types, Avro ranges, UTC times, exact
percentages). The strategies also keep the content plausible where it is cheap (positive
masses, compositions summing to the mass, output claims not above the output) so that rule
tests can start from them; they do not make a sequence of events consistent with each other.

    from tests.strategies import events, headers, signers
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import strategies as st

from ledger.signing import Ed25519Signer, key_id_for
from schemas.events import (
    BatchCreated,
    BatchReceived,
    BatchShipped,
    BatchTransformed,
    CertificateIssued,
    CertificateRevoked,
    Composition,
    CustodyModel,
    Event,
    EventHeader,
    KeyRevoked,
    KeyRotated,
    ParticipantEnrolled,
    Process,
    Role,
    Site,
    TransformInput,
    TransformOutput,
)

MAX_GRAMS = 10**15
"""Largest mass drawn (a billion tonnes): sums of a few stay far inside an Avro long."""

identifiers = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_/", min_size=1, max_size=24)
"""Participant, batch, site ... ids."""
texts = st.text(min_size=1, max_size=40)
"""Free text (names, reasons): any Unicode except surrogates."""
countries = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)
grams = st.integers(min_value=1, max_value=MAX_GRAMS)
utc_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.just(UTC),
)
percentages = st.decimals(min_value=0, max_value=100, places=2)
public_keys = st.binary(min_size=32, max_size=32)
seeds = st.binary(min_size=32, max_size=32)
signers = seeds.map(Ed25519Signer.from_seed)
"""Ed25519 signers from random seeds (deterministic, so hypothesis can shrink them)."""


def headers(
    producer_id: st.SearchStrategy[str] | None = None,
    producer_seq: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[EventHeader]:
    """Event headers; pass strategies (e.g. ``st.just("acme")``) to fix the producer."""
    return st.builds(
        EventHeader,
        event_id=st.uuids().map(str),
        producer_id=producer_id if producer_id is not None else identifiers,
        producer_seq=producer_seq
        if producer_seq is not None
        else st.integers(min_value=0, max_value=2**63 - 1),
        occurred_at=utc_datetimes,
    )


@st.composite
def compositions(draw: st.DrawFn, mass_g: int | None = None) -> Composition:
    """A split of ``mass_g`` (drawn if None) into virgin, pre- and post-consumer grams."""
    total = draw(grams) if mass_g is None else mass_g
    pre = draw(st.integers(min_value=0, max_value=total))
    post = draw(st.integers(min_value=0, max_value=total - pre))
    return Composition(virgin_g=total - pre - post, pre_consumer_g=pre, post_consumer_g=post)


@st.composite
def participant_enrolled(draw: st.DrawFn) -> ParticipantEnrolled:
    public_key = draw(public_keys)
    return ParticipantEnrolled(
        header=draw(headers(producer_id=st.just("hub"))),
        participant_id=draw(identifiers),
        legal_name=draw(texts),
        country=draw(countries),
        roles=tuple(draw(st.lists(st.sampled_from(Role), min_size=1, max_size=3, unique=True))),
        sites=tuple(draw(st.lists(st.builds(Site, identifiers, texts, countries), max_size=3))),
        public_key=public_key,
        key_id=key_id_for(public_key),
    )


@st.composite
def key_rotated(draw: st.DrawFn) -> KeyRotated:
    public_key = draw(public_keys)
    return KeyRotated(
        header=draw(headers()),
        participant_id=draw(identifiers),
        new_public_key=public_key,
        new_key_id=key_id_for(public_key),
        previous_key_id=key_id_for(draw(public_keys)),
    )


def key_revoked() -> st.SearchStrategy[KeyRevoked]:
    return st.builds(
        KeyRevoked,
        header=headers(),
        participant_id=identifiers,
        key_id=public_keys.map(key_id_for),
        reason=texts,
    )


@st.composite
def batch_created(draw: st.DrawFn) -> BatchCreated:
    header = draw(headers())
    composition = draw(compositions())
    return BatchCreated(
        header=header,
        batch_id=draw(identifiers),
        owner_id=header.producer_id,
        site_id=draw(identifiers),
        material=draw(st.sampled_from(["PET", "PET_FLAKE", "HDPE", "CLINKER", "FLY_ASH"])),
        mass_g=composition.total_g,
        composition=composition,
    )


def batch_shipped() -> st.SearchStrategy[BatchShipped]:
    return st.builds(
        BatchShipped,
        header=headers(),
        shipment_id=identifiers,
        batch_id=identifiers,
        mass_g=grams,
        receiver_id=identifiers,
        receiver_site_id=identifiers,
    )


def batch_received() -> st.SearchStrategy[BatchReceived]:
    return st.builds(
        BatchReceived, header=headers(), shipment_id=identifiers, mass_g=grams, site_id=identifiers
    )


@st.composite
def transform_outputs(draw: st.DrawFn, mass_balance: bool) -> TransformOutput:
    mass = draw(grams)
    pre = draw(st.integers(min_value=0, max_value=mass)) if mass_balance else 0
    post = draw(st.integers(min_value=0, max_value=mass - pre)) if mass_balance else 0
    return TransformOutput(
        batch_id=draw(identifiers),
        material=draw(st.sampled_from(["PET_FLAKE", "PET_PELLET", "CEMENT"])),
        mass_g=mass,
        claimed_pre_consumer_g=pre,
        claimed_post_consumer_g=post,
    )


@st.composite
def batch_transformed(draw: st.DrawFn) -> BatchTransformed:
    model = draw(st.sampled_from(CustodyModel))
    mass_balance = model is CustodyModel.MASS_BALANCE
    return BatchTransformed(
        header=draw(headers()),
        transformation_id=draw(identifiers),
        site_id=draw(identifiers),
        process=draw(st.sampled_from(Process)),
        custody_model=model,
        inputs=tuple(
            draw(st.lists(st.builds(TransformInput, identifiers, grams), min_size=1, max_size=4))
        ),
        outputs=tuple(draw(st.lists(transform_outputs(mass_balance), min_size=1, max_size=4))),
    )


@st.composite
def certificate_issued(draw: st.DrawFn) -> CertificateIssued:
    start, end = sorted((draw(utc_datetimes), draw(utc_datetimes)))
    pre = draw(percentages)
    post = draw(st.decimals(min_value=0, max_value=100 - pre, places=2))
    return CertificateIssued(
        header=draw(headers()),
        certificate_id=draw(identifiers),
        batch_id=draw(identifiers),
        holder_id=draw(identifiers),
        mass_g=draw(grams),
        custody_model=draw(st.sampled_from(CustodyModel)),
        pre_consumer_pct=Decimal(pre),
        post_consumer_pct=Decimal(post),
        period_start=start,
        period_end=end,
        certificate_sha256=draw(st.binary(min_size=32, max_size=32)),
    )


def certificate_revoked() -> st.SearchStrategy[CertificateRevoked]:
    return st.builds(CertificateRevoked, header=headers(), certificate_id=identifiers, reason=texts)


def events() -> st.SearchStrategy[Event]:
    """Any valid event, of every type."""
    return st.one_of(
        participant_enrolled(),
        key_rotated(),
        key_revoked(),
        batch_created(),
        batch_shipped(),
        batch_received(),
        batch_transformed(),
        certificate_issued(),
        certificate_revoked(),
    )
