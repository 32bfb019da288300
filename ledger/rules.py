"""The business rules of the ledger (DESIGN.md section 5), as one pure decision per event.

:func:`decide` takes the current state (through :class:`~ledger.state.StateView`), a verified
event, the key that signed it and the sequence number it would get, and returns the
:class:`~ledger.state.Changes` that accepting it makes, or raises
:class:`~ledger.errors.RuleViolation` with a stable reason code. It reads no clock, database or
socket, so the sequencer, the audit and the tests all run exactly the same decisions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from ledger.envelope import KnownKey
from ledger.errors import Reason, RuleViolation, SignatureError
from ledger.signing import key_id_for
from ledger.state import (
    Batch,
    CertificateRecord,
    Changes,
    CreditAccount,
    KeyRecord,
    KeyStatus,
    Parent,
    Participant,
    Shipment,
    StateView,
)
from schemas.events import (
    HUB_PRODUCER_ID,
    BatchCreated,
    BatchReceived,
    BatchShipped,
    BatchTransformed,
    CertificateIssued,
    CertificateRevoked,
    CustodyModel,
    Event,
    KeyRevoked,
    KeyRotated,
    ParticipantEnrolled,
    Role,
)
from verification.composition import claimed, combine, portion


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What the rules need besides the state: the hub authority and the material list."""

    authority_keys: tuple[KnownKey, ...]
    material_group: Callable[[str], str | None]
    """Group of a material code (``"PET" -> "plastics.PET"``), None when unknown."""


class LedgerKeyring:
    """The key registry as a :class:`~ledger.envelope.KeyLookup`: rooted in the configured
    authority keys, grown by the ledger's own ParticipantEnrolled / KeyRotated / KeyRevoked."""

    def __init__(self, view: StateView, authority_keys: Iterable[KnownKey]) -> None:
        self._view = view
        self._authority = {key.key_id: key for key in authority_keys}

    def resolve(self, key_id: str) -> KnownKey:
        if key_id in self._authority:
            return self._authority[key_id]
        record = self._view.key(key_id)
        if record is None:
            raise SignatureError(Reason.UNKNOWN_KEY, f"unknown key {key_id!r}")
        if record.status is not KeyStatus.ACTIVE:
            raise SignatureError(
                Reason.REVOKED_KEY, f"key {key_id!r} is {record.status.value.lower()}"
            )
        return KnownKey(key_id, record.participant_id, record.public_key)


def period_of(moment: datetime) -> str:
    """The mass-balance period of a moment: its calendar quarter (ISO 22095 allows at most
    three months), e.g. ``"2026Q4"``. Credit does not carry over between periods."""
    return f"{moment.year}Q{(moment.month - 1) // 3 + 1}"


def decide(  # noqa: PLR0911  (one return per event type is the point)
    view: StateView, event: Event, *, signer: KnownKey, seq: int, context: RuleContext
) -> Changes:
    """The changes that accepting ``event`` (entry ``seq``, signed by ``signer``) makes.

    Raises:
        RuleViolation: the event breaks a rule; its reason code says which.
    """
    match event:
        case ParticipantEnrolled():
            return _enrol(view, event, signer, seq)
        case KeyRotated():
            return _rotate(view, event, signer, seq)
        case KeyRevoked():
            return _revoke(view, event, signer)
        case BatchCreated():
            return _create(view, event, signer, seq, context)
        case BatchShipped():
            return _ship(view, event, signer, seq)
        case BatchReceived():
            return _receive(view, event, signer, seq)
        case BatchTransformed():
            return _transform(view, event, signer, seq, context)
        case CertificateIssued():
            return _certify(view, event, signer, seq)
        case CertificateRevoked():
            return _revoke_certificate(view, event, signer, seq)
    raise RuleViolation(Reason.UNKNOWN_EVENT_TYPE, f"no rule for {type(event).__name__}")


def _violation(reason: Reason, message: str) -> RuleViolation:
    return RuleViolation(reason, message)


def _require_participant(view: StateView, participant_id: str) -> Participant:
    participant = view.participant(participant_id)
    if participant is None:
        raise _violation(Reason.UNKNOWN_PARTICIPANT, f"participant {participant_id!r} is unknown")
    return participant


def _require_site(participant: Participant, site_id: str) -> None:
    if not participant.has_site(site_id):
        raise _violation(
            Reason.INVALID_FIELD,
            f"site {site_id!r} is not a site of participant {participant.participant_id!r}",
        )


def _require_positive(mass_g: int, what: str) -> None:
    if mass_g <= 0:
        raise _violation(Reason.BAD_MASS, f"{what} must be a positive mass, got {mass_g} g")


def _require_material(context: RuleContext, material: str) -> str:
    group = context.material_group(material)
    if group is None:
        raise _violation(Reason.UNKNOWN_MATERIAL, f"material {material!r} is not in the list")
    return group


def _require_owned_batch(view: StateView, batch_id: str, signer: KnownKey) -> Batch:
    batch = view.batch(batch_id)
    if batch is None:
        raise _violation(Reason.UNKNOWN_BATCH, f"batch {batch_id!r} is unknown")
    if batch.owner_id != signer.participant_id:
        raise _violation(
            Reason.WRONG_OWNER,
            f"batch {batch_id!r} belongs to {batch.owner_id!r}, not {signer.participant_id!r}",
        )
    return batch


def _require_new_batch(view: StateView, batch_id: str) -> None:
    """Refuse a batch id that is taken, by a batch or by a shipment.

    A shipment's id is the id of the batch its receipt creates (:func:`_receive`), so it is
    reserved from the moment of shipping: otherwise anyone could create a batch with that id
    first, and the receipt, hence the shipped grams, would be refused forever.
    """
    if view.batch(batch_id) is not None or view.shipment(batch_id) is not None:
        raise _violation(Reason.DUPLICATE_BATCH, f"batch {batch_id!r} already exists")


def _draw(batch: Batch, mass_g: int) -> Batch:
    """``batch`` with ``mass_g`` more consumed, refusing to go below zero (double spending)."""
    if mass_g > batch.remaining_g:
        raise _violation(
            Reason.DOUBLE_SPEND,
            f"batch {batch.batch_id!r} has {batch.remaining_g} g left; {mass_g} g requested",
        )
    return dataclasses.replace(batch, remaining_g=batch.remaining_g - mass_g)


# --- participants and keys --------------------------------------------------------------------


def _enrol(view: StateView, event: ParticipantEnrolled, signer: KnownKey, seq: int) -> Changes:
    if not signer.authority:
        raise _violation(Reason.NOT_AUTHORITY, "only the hub authority may enrol participants")
    if view.participant(event.participant_id) is not None:
        raise _violation(
            Reason.DUPLICATE_PARTICIPANT, f"participant {event.participant_id!r} is enrolled"
        )
    if event.participant_id == HUB_PRODUCER_ID:
        raise _violation(Reason.INVALID_FIELD, f"{HUB_PRODUCER_ID!r} is the hub's own id")
    site_ids = [site.site_id for site in event.sites]
    if len(set(site_ids)) != len(site_ids):
        raise _violation(Reason.INVALID_FIELD, "the sites repeat a site id")
    for site_id in site_ids:
        # Sites hold mass-balance credit: two participants sharing a site id would share it.
        owner = view.site_owner(site_id)
        if owner is not None:
            raise _violation(Reason.INVALID_FIELD, f"site {site_id!r} belongs to {owner!r}")
    key = _new_key(view, event.participant_id, event.public_key, event.key_id, seq)
    participant = Participant(
        participant_id=event.participant_id,
        legal_name=event.legal_name,
        country=event.country,
        roles=event.roles,
        sites=event.sites,
        enrolled_seq=seq,
    )
    return Changes(participants=(participant,), keys=(key,))


def _new_key(
    view: StateView, participant_id: str, public_key: bytes, key_id: str, seq: int
) -> KeyRecord:
    try:
        expected = key_id_for(public_key)
    except SignatureError as exc:
        raise _violation(Reason.INVALID_FIELD, exc.message) from exc
    if key_id != expected:
        raise _violation(Reason.INVALID_FIELD, f"key id {key_id!r} should be {expected!r}")
    if view.key(key_id) is not None:
        raise _violation(Reason.INVALID_FIELD, f"key {key_id!r} is already registered")
    return KeyRecord(key_id, participant_id, public_key, KeyStatus.ACTIVE, seq)


def _require_key_authority(signer: KnownKey, participant_id: str) -> None:
    if not (signer.authority or signer.participant_id == participant_id):
        raise _violation(
            Reason.WRONG_OWNER,
            f"{signer.participant_id!r} may not manage the keys of {participant_id!r}",
        )


def _rotate(view: StateView, event: KeyRotated, signer: KnownKey, seq: int) -> Changes:
    _require_participant(view, event.participant_id)
    _require_key_authority(signer, event.participant_id)
    previous = view.key(event.previous_key_id)
    if previous is None or previous.participant_id != event.participant_id:
        raise _violation(
            Reason.UNKNOWN_KEY if previous is None else Reason.WRONG_OWNER,
            f"key {event.previous_key_id!r} is not a key of {event.participant_id!r}",
        )
    # Only the hub may replace a revoked key (the participant's own key can no longer sign);
    # that is how a participant whose key was compromised gets back in. The revoked key
    # stays revoked.
    replaceable = previous.status is KeyStatus.ACTIVE or (
        previous.status is KeyStatus.REVOKED and signer.authority
    )
    if not replaceable:
        raise _violation(Reason.REVOKED_KEY, f"key {event.previous_key_id!r} is not active")
    new = _new_key(view, event.participant_id, event.new_public_key, event.new_key_id, seq)
    if previous.status is KeyStatus.REVOKED:
        return Changes(keys=(new,))
    rotated = dataclasses.replace(previous, status=KeyStatus.ROTATED)
    return Changes(keys=(rotated, new))


def _revoke(view: StateView, event: KeyRevoked, signer: KnownKey) -> Changes:
    _require_key_authority(signer, event.participant_id)
    key = view.key(event.key_id)
    if key is None or key.participant_id != event.participant_id:
        raise _violation(
            Reason.UNKNOWN_KEY, f"key {event.key_id!r} is not a key of {event.participant_id!r}"
        )
    if key.status is KeyStatus.REVOKED:
        raise _violation(Reason.REVOKED_KEY, f"key {event.key_id!r} is already revoked")
    return Changes(keys=(dataclasses.replace(key, status=KeyStatus.REVOKED),))


# --- batches ----------------------------------------------------------------------------------


def _create(
    view: StateView, event: BatchCreated, signer: KnownKey, seq: int, context: RuleContext
) -> Changes:
    if event.owner_id != signer.participant_id:
        raise _violation(
            Reason.WRONG_OWNER,
            f"{signer.participant_id!r} may not create a batch owned by {event.owner_id!r}",
        )
    _require_site(_require_participant(view, event.owner_id), event.site_id)
    _require_material(context, event.material)
    _require_positive(event.mass_g, "mass_g")
    comp = event.composition
    if min(comp.virgin_g, comp.pre_consumer_g, comp.post_consumer_g) < 0 or (
        comp.total_g != event.mass_g
    ):
        raise _violation(
            Reason.INVALID_COMPOSITION,
            f"composition {comp.virgin_g}+{comp.pre_consumer_g}+{comp.post_consumer_g} g "
            f"does not add up to the batch mass {event.mass_g} g",
        )
    _require_new_batch(view, event.batch_id)
    batch = Batch(
        batch_id=event.batch_id,
        owner_id=event.owner_id,
        site_id=event.site_id,
        material=event.material,
        mass_g=event.mass_g,
        remaining_g=event.mass_g,
        composition=comp,
        custody_model=None,
        parents=(),
        created_seq=seq,
    )
    return Changes(batches=(batch,))


def _ship(view: StateView, event: BatchShipped, signer: KnownKey, seq: int) -> Changes:
    _require_positive(event.mass_g, "mass_g")
    batch = _require_owned_batch(view, event.batch_id, signer)
    if view.shipment(event.shipment_id) is not None:
        raise _violation(
            Reason.DUPLICATE_SHIPMENT, f"shipment {event.shipment_id!r} already exists"
        )
    _require_site(_require_participant(view, event.receiver_id), event.receiver_site_id)
    _require_new_batch(view, event.shipment_id)  # the id of the batch the receipt creates
    shipment = Shipment(
        shipment_id=event.shipment_id,
        batch_id=batch.batch_id,
        sender_id=batch.owner_id,
        receiver_id=event.receiver_id,
        receiver_site_id=event.receiver_site_id,
        mass_g=event.mass_g,
        shipped_seq=seq,
    )
    return Changes(batches=(_draw(batch, event.mass_g),), shipments=(shipment,))


def _receive(view: StateView, event: BatchReceived, signer: KnownKey, seq: int) -> Changes:
    """The receiver countersigns: ownership of the received mass moves only now.

    The received material becomes a new batch whose id is the shipment id, owned by the
    receiver, with the source batch's composition pro rata; the transit loss
    (shipped - received) leaves the chain of custody here.
    """
    shipment = view.shipment(event.shipment_id)
    if shipment is None:
        raise _violation(Reason.UNKNOWN_SHIPMENT, f"shipment {event.shipment_id!r} is unknown")
    if shipment.received_seq is not None:
        raise _violation(
            Reason.DUPLICATE_SHIPMENT, f"shipment {event.shipment_id!r} was already received"
        )
    if signer.participant_id != shipment.receiver_id:
        raise _violation(
            Reason.WRONG_RECEIVER,
            f"shipment {event.shipment_id!r} is addressed to {shipment.receiver_id!r}",
        )
    _require_positive(event.mass_g, "mass_g")
    if event.mass_g > shipment.mass_g:
        raise _violation(
            Reason.RECEIPT_ABOVE_SHIPPED,
            f"received {event.mass_g} g but only {shipment.mass_g} g were shipped",
        )
    _require_site(_require_participant(view, shipment.receiver_id), event.site_id)
    if view.batch(shipment.shipment_id) is not None:  # pragma: no cover - reserved by _ship
        raise _violation(Reason.DUPLICATE_BATCH, f"batch {shipment.shipment_id!r} exists")
    source = view.batch(shipment.batch_id)
    if source is None:  # pragma: no cover - a shipment always names a stored batch
        raise _violation(Reason.UNKNOWN_BATCH, f"batch {shipment.batch_id!r} is unknown")
    shipped = portion(source.composition, shipment.mass_g, source.mass_g)
    received = Batch(
        batch_id=shipment.shipment_id,
        owner_id=shipment.receiver_id,
        site_id=event.site_id,
        material=source.material,
        mass_g=event.mass_g,
        remaining_g=event.mass_g,
        composition=portion(shipped, event.mass_g, shipment.mass_g),
        custody_model=source.custody_model,
        parents=(Parent(source.batch_id, shipment.mass_g),),
        created_seq=seq,
    )
    done = dataclasses.replace(shipment, received_g=event.mass_g, received_seq=seq)
    return Changes(batches=(received,), shipments=(done,))


def _transform(
    view: StateView, event: BatchTransformed, signer: KnownKey, seq: int, context: RuleContext
) -> Changes:
    if not event.inputs or not event.outputs:
        raise _violation(Reason.INVALID_FIELD, "a transformation needs inputs and outputs")
    participant = _require_participant(view, signer.participant_id)
    _require_site(participant, event.site_id)
    drawn: dict[str, Batch] = {}
    consumed = []
    for item in event.inputs:
        _require_positive(item.mass_g, f"input {item.batch_id!r} mass_g")
        batch = drawn.get(item.batch_id) or _require_owned_batch(view, item.batch_id, signer)
        if batch.site_id != event.site_id:
            raise _violation(
                Reason.INVALID_FIELD,
                f"batch {item.batch_id!r} is at site {batch.site_id!r}, not {event.site_id!r}",
            )
        drawn[item.batch_id] = _draw(batch, item.mass_g)
        consumed.append((batch, item.mass_g))
    input_g = sum(mass for _batch, mass in consumed)
    output_g = 0
    for out in event.outputs:
        _require_positive(out.mass_g, f"output {out.batch_id!r} mass_g")
        _require_material(context, out.material)
        _require_new_batch(view, out.batch_id)
        output_g += out.mass_g
    if len({out.batch_id for out in event.outputs}) != len(event.outputs):
        raise _violation(Reason.DUPLICATE_BATCH, "the outputs repeat a batch id")
    if output_g > input_g:
        raise _violation(
            Reason.OUTPUT_EXCEEDS_INPUT,
            f"outputs weigh {output_g} g but only {input_g} g of inputs were consumed",
        )
    parents = tuple(Parent(batch.batch_id, mass) for batch, mass in consumed)
    if event.custody_model is CustodyModel.MASS_BALANCE:
        outputs, credits = _mass_balance(
            view, event, consumed, seq=seq, parents=parents, context=context
        )
    else:
        outputs, credits = _proportional(event, consumed, seq, parents, signer), ()
    return Changes(batches=(*drawn.values(), *outputs), credits=credits)


def _output_batch(
    event: BatchTransformed, index: int, seq: int, parents: tuple[Parent, ...], owner: str
) -> Batch:
    out = event.outputs[index]
    return Batch(
        batch_id=out.batch_id,
        owner_id=owner,
        site_id=event.site_id,
        material=out.material,
        mass_g=out.mass_g,
        remaining_g=out.mass_g,
        composition=claimed(out.mass_g, 0, 0),
        custody_model=event.custody_model,
        parents=parents,
        created_seq=seq,
    )


def _proportional(
    event: BatchTransformed,
    consumed: list[tuple[Batch, int]],
    seq: int,
    parents: tuple[Parent, ...],
    signer: KnownKey,
) -> tuple[Batch, ...]:
    """Segregation / controlled blending: outputs inherit the mass-weighted composition of the
    inputs consumed; losses take their proportional share (ISO 22095 sections 6 and 7)."""
    if any(o.claimed_pre_consumer_g or o.claimed_post_consumer_g for o in event.outputs):
        raise _violation(
            Reason.INVALID_COMPOSITION,
            f"{event.custody_model.value} outputs inherit their composition; claims are for "
            "MASS_BALANCE only",
        )
    blend = combine(portion(batch.composition, mass, batch.mass_g) for batch, mass in consumed)
    outputs = []
    for index, out in enumerate(event.outputs):
        batch = _output_batch(event, index, seq, parents, signer.participant_id)
        composition = portion(blend, out.mass_g, blend.total_g)
        outputs.append(dataclasses.replace(batch, composition=composition))
    return tuple(outputs)


def _mass_balance(
    view: StateView,
    event: BatchTransformed,
    consumed: list[tuple[Batch, int]],
    *,
    seq: int,
    parents: tuple[Parent, ...],
    context: RuleContext,
) -> tuple[tuple[Batch, ...], tuple[CreditAccount, ...]]:
    """Mass balance (ISO 22095 section 8; ISCC PLUS credit method): consumed inputs add their
    recycled grams to the site's credit for the input's material group and period; outputs
    declared recycled draw it down; the balance may never go negative."""
    period = period_of(event.header.occurred_at)
    accounts: dict[str, CreditAccount] = {}

    def account(group: str) -> CreditAccount:
        if group not in accounts:
            accounts[group] = view.credit(event.site_id, group, period) or CreditAccount(
                event.site_id, group, period, 0, 0
            )
        return accounts[group]

    for batch, mass in consumed:
        part = portion(batch.composition, mass, batch.mass_g)
        acc = account(_require_material(context, batch.material))
        accounts[acc.material_group] = dataclasses.replace(
            acc,
            pre_consumer_g=acc.pre_consumer_g + part.pre_consumer_g,
            post_consumer_g=acc.post_consumer_g + part.post_consumer_g,
        )
    outputs = []
    for index, out in enumerate(event.outputs):
        if min(out.claimed_pre_consumer_g, out.claimed_post_consumer_g) < 0 or (
            out.claimed_pre_consumer_g + out.claimed_post_consumer_g > out.mass_g
        ):
            raise _violation(
                Reason.INVALID_COMPOSITION,
                f"output {out.batch_id!r} claims more recycled grams than it weighs",
            )
        acc = account(_require_material(context, out.material))
        if (
            out.claimed_pre_consumer_g > acc.pre_consumer_g
            or out.claimed_post_consumer_g > acc.post_consumer_g
        ):
            raise _violation(
                Reason.CREDIT_EXCEEDED,
                f"output {out.batch_id!r} claims {out.claimed_pre_consumer_g} g pre- and "
                f"{out.claimed_post_consumer_g} g post-consumer; site {event.site_id!r} has "
                f"{acc.pre_consumer_g} g and {acc.post_consumer_g} g of "
                f"{acc.material_group} credit in {period}",
            )
        accounts[acc.material_group] = dataclasses.replace(
            acc,
            pre_consumer_g=acc.pre_consumer_g - out.claimed_pre_consumer_g,
            post_consumer_g=acc.post_consumer_g - out.claimed_post_consumer_g,
        )
        batch = _output_batch(event, index, seq, parents, consumed[0][0].owner_id)  # the signer
        composition = claimed(out.mass_g, out.claimed_pre_consumer_g, out.claimed_post_consumer_g)
        outputs.append(dataclasses.replace(batch, composition=composition))
    return tuple(outputs), tuple(accounts.values())


# --- certificates -----------------------------------------------------------------------------


def _certify(view: StateView, event: CertificateIssued, signer: KnownKey, seq: int) -> Changes:
    certifier = _require_participant(view, signer.participant_id)
    if Role.CERTIFIER not in certifier.roles:
        raise _violation(
            Reason.NOT_CERTIFIER, f"{signer.participant_id!r} is not enrolled as a certifier"
        )
    if view.batch(event.batch_id) is None:
        raise _violation(Reason.UNKNOWN_BATCH, f"batch {event.batch_id!r} is unknown")
    if view.certificate(event.certificate_id) is not None:
        raise _violation(
            Reason.INVALID_FIELD, f"certificate {event.certificate_id!r} already exists"
        )
    record = CertificateRecord(
        certificate_id=event.certificate_id,
        batch_id=event.batch_id,
        holder_id=event.holder_id,
        certifier_id=signer.participant_id,
        certificate_sha256=event.certificate_sha256,
        issued_seq=seq,
    )
    return Changes(certificates=(record,))


def _revoke_certificate(
    view: StateView, event: CertificateRevoked, signer: KnownKey, seq: int
) -> Changes:
    record = view.certificate(event.certificate_id)
    if record is None:
        raise _violation(
            Reason.UNKNOWN_CERTIFICATE, f"certificate {event.certificate_id!r} is unknown"
        )
    if not (signer.authority or signer.participant_id == record.certifier_id):
        raise _violation(
            Reason.NOT_CERTIFIER,
            f"only {record.certifier_id!r} (or the hub) may revoke {event.certificate_id!r}",
        )
    if record.revoked_seq is not None:
        raise _violation(
            Reason.UNKNOWN_CERTIFICATE, f"certificate {event.certificate_id!r} is revoked"
        )
    return Changes(certificates=(dataclasses.replace(record, revoked_seq=seq),))
