"""The events of CE Hub Ledger as frozen records, and their Avro datum form.

One dataclass per Avro record of ``schemas/*.avsc`` (DESIGN.md section 3), field for field and
in the same order (``tests/unit/test_codec.py`` checks it). Quantities are integer grams,
percentages :class:`~decimal.Decimal`, times aware UTC datetimes, sequences tuples.

A record validates the *form* of its fields when it is built (types, the Avro ``long`` range,
UTC-aware times, percentages exact to 0.01, canonical UUIDs) and raises
:class:`~ledger.errors.InputError` otherwise, so every record that exists can be encoded.
Whether the content makes sense (masses positive, composition summing to the mass, the signer
allowed to act) is the business rules' job (``ledger/rules.py``), because those rules may
change while already signed events must stay readable.

:func:`to_avro` and :func:`from_avro` convert to and from the dicts that fastavro reads and
writes; ``schemas/codec.py`` turns those into bytes.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeAlias

from ledger.errors import InputError, Reason

NAMESPACE = "org.cehub.v1"
HUB_PRODUCER_ID = "hub"
"""Producer id of the hub authority, which signs ParticipantEnrolled (DESIGN.md section 4)."""

_LONG_MIN = -(2**63)
_LONG_MAX = 2**63 - 1
_PCT_SCALE = 2
"""Scale of every decimal in the schemas (``bytes`` decimal, precision 7, scale 2)."""
_PCT_LIMIT = Decimal(10) ** (7 - _PCT_SCALE)
_PCT_QUANTUM = Decimal(1).scaleb(-_PCT_SCALE)


class Role(enum.StrEnum):
    """Avro enum ``Role``: what a participant does in the supply chain."""

    COLLECTOR = "COLLECTOR"
    RECYCLER = "RECYCLER"
    CONVERTER = "CONVERTER"
    MANUFACTURER = "MANUFACTURER"
    BRAND = "BRAND"
    CERTIFIER = "CERTIFIER"


class Process(enum.StrEnum):
    """Avro enum ``Process``: the kind of a transformation."""

    SORTING = "SORTING"
    WASHING = "WASHING"
    SHREDDING = "SHREDDING"
    PELLETISING = "PELLETISING"
    COMPOUNDING = "COMPOUNDING"
    MOULDING = "MOULDING"
    CO_PROCESSING = "CO_PROCESSING"
    BLENDING = "BLENDING"
    OTHER = "OTHER"


class CustodyModel(enum.StrEnum):
    """Avro enum ``CustodyModel``: chain-of-custody models of ISO 22095:2020."""

    SEGREGATION = "SEGREGATION"
    CONTROLLED_BLENDING = "CONTROLLED_BLENDING"
    MASS_BALANCE = "MASS_BALANCE"


class _Record:
    """Validates the fields of a record dataclass after ``__init__`` (see module docstring)."""

    __slots__ = ()

    def __post_init__(self) -> None:
        for name, kind in _field_kinds(type(self)):
            value = getattr(self, name)
            checked = _check_value(value, kind, name)
            if checked is not value:  # a datetime normalised to UTC
                object.__setattr__(self, name, checked)


@dataclass(frozen=True, slots=True)
class EventHeader(_Record):
    """First field of every event: identity, producer, per-producer sequence, time."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.EventHeader"

    event_id: str
    producer_id: str
    producer_seq: int
    occurred_at: datetime

    def __post_init__(self) -> None:
        _Record.__post_init__(self)
        try:
            canonical = str(uuid.UUID(self.event_id))
        except ValueError:
            canonical = None
        if canonical != self.event_id:
            raise InputError(
                Reason.INVALID_FIELD,
                f"event_id {self.event_id!r} is not a UUID in canonical lowercase form",
                field="event_id",
            )


@dataclass(frozen=True, slots=True)
class Site(_Record):
    """A participant's site (Avro record ``Site``)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.Site"

    site_id: str
    name: str
    country: str


@dataclass(frozen=True, slots=True)
class Composition(_Record):
    """Grams of a batch by origin, ISO 14021 section 7.8.1.1 (Avro record ``Composition``)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.Composition"

    virgin_g: int
    pre_consumer_g: int
    post_consumer_g: int

    @property
    def total_g(self) -> int:
        """The sum of the three parts (the batch's mass when the event is valid)."""
        return self.virgin_g + self.pre_consumer_g + self.post_consumer_g


@dataclass(frozen=True, slots=True)
class TransformInput(_Record):
    """Grams of one batch consumed by a transformation."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.TransformInput"

    batch_id: str
    mass_g: int


@dataclass(frozen=True, slots=True)
class TransformOutput(_Record):
    """A batch produced by a transformation; claims are used by the mass-balance model only."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.TransformOutput"

    batch_id: str
    material: str
    mass_g: int
    claimed_pre_consumer_g: int = 0
    claimed_post_consumer_g: int = 0


@dataclass(frozen=True, slots=True)
class ParticipantEnrolled(_Record):
    """Admits a participant with its first key; signed by the hub authority."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.ParticipantEnrolled"

    header: EventHeader
    participant_id: str
    legal_name: str
    country: str
    roles: tuple[Role, ...]
    sites: tuple[Site, ...]
    public_key: bytes
    key_id: str


@dataclass(frozen=True, slots=True)
class KeyRotated(_Record):
    """Replaces a participant's key; signed by its current key or the hub authority."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.KeyRotated"

    header: EventHeader
    participant_id: str
    new_public_key: bytes
    new_key_id: str
    previous_key_id: str


@dataclass(frozen=True, slots=True)
class KeyRevoked(_Record):
    """Withdraws a key; signed by its owner or the hub authority."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.KeyRevoked"

    header: EventHeader
    participant_id: str
    key_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class BatchCreated(_Record):
    """A new batch at a site, with its composition by origin; signed by the owner."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.BatchCreated"

    header: EventHeader
    batch_id: str
    owner_id: str
    site_id: str
    material: str
    mass_g: int
    composition: Composition


@dataclass(frozen=True, slots=True)
class BatchShipped(_Record):
    """Part of a batch sent to a receiver; signed by the sender (the owner)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.BatchShipped"

    header: EventHeader
    shipment_id: str
    batch_id: str
    mass_g: int
    receiver_id: str
    receiver_site_id: str


@dataclass(frozen=True, slots=True)
class BatchReceived(_Record):
    """A shipment acknowledged (mass received <= shipped); signed by the receiver."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.BatchReceived"

    header: EventHeader
    shipment_id: str
    mass_g: int
    site_id: str


@dataclass(frozen=True, slots=True)
class BatchTransformed(_Record):
    """Inputs consumed, outputs produced at one site; signed by the owner."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.BatchTransformed"

    header: EventHeader
    transformation_id: str
    site_id: str
    process: Process
    custody_model: CustodyModel
    inputs: tuple[TransformInput, ...]
    outputs: tuple[TransformOutput, ...]


@dataclass(frozen=True, slots=True)
class CertificateIssued(_Record):
    """A recycled-content claim about a batch; signed by a certifier."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.CertificateIssued"

    header: EventHeader
    certificate_id: str
    batch_id: str
    holder_id: str
    mass_g: int
    custody_model: CustodyModel
    pre_consumer_pct: Decimal
    post_consumer_pct: Decimal
    period_start: datetime
    period_end: datetime
    certificate_sha256: bytes


@dataclass(frozen=True, slots=True)
class CertificateRevoked(_Record):
    """Withdraws a certificate; signed by a certifier."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.CertificateRevoked"

    header: EventHeader
    certificate_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Envelope(_Record):
    """The signed event as it travels on Kafka (Avro record ``Envelope``, docs/envelope.md).

    Not an event: ``ledger/envelope.py`` builds and checks it.
    """

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.Envelope"

    payload_type: str
    payload: bytes
    key_id: str
    signature: bytes
    producer_id: str
    producer_seq: int


Event: TypeAlias = (
    ParticipantEnrolled
    | KeyRotated
    | KeyRevoked
    | BatchCreated
    | BatchShipped
    | BatchReceived
    | BatchTransformed
    | CertificateIssued
    | CertificateRevoked
)
"""Any event. Every member has ``header`` and the class constant ``AVRO_NAME``."""

EVENT_TYPES: Mapping[str, type[Event]] = {
    cls.AVRO_NAME: cls
    for cls in (
        ParticipantEnrolled,
        KeyRotated,
        KeyRevoked,
        BatchCreated,
        BatchShipped,
        BatchReceived,
        BatchTransformed,
        CertificateIssued,
        CertificateRevoked,
    )
}
"""Event classes by Avro full name (``org.cehub.v1.BatchCreated`` ...)."""


def to_avro(record: _Record) -> dict[str, Any]:
    """The Avro datum (a dict in schema field order) of a record dataclass."""
    return {
        name: _value_to_avro(getattr(record, name)) for name, _kind in _field_kinds(type(record))
    }


_R = typing.TypeVar("_R", bound=_Record)


def from_avro(cls: type[_R], datum: Mapping[str, Any]) -> _R:
    """Build a record of class ``cls`` from an Avro datum as fastavro reads it.

    Raises:
        InputError: a field is missing or has the wrong form.
    """
    kwargs: dict[str, Any] = {}
    for name, kind in _field_kinds(cls):
        if name not in datum:
            raise InputError(Reason.MISSING_FIELD, f"{cls.__name__} has no {name!r}", field=name)
        kwargs[name] = _value_from_avro(datum[name], kind, name)
    return cls(**kwargs)


def event_from_avro(avro_name: str, datum: Mapping[str, Any]) -> Event:
    """The event of Avro record type ``avro_name`` (a key of :data:`EVENT_TYPES`).

    Raises:
        InputError: not an event type, or a field of the wrong form.
    """
    cls = EVENT_TYPES.get(avro_name)
    if cls is None:
        raise InputError(Reason.UNKNOWN_EVENT_TYPE, f"{avro_name!r} is not an event type")
    return from_avro(cls, datum)


_FIELD_KINDS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _field_kinds(cls: type) -> tuple[tuple[str, Any], ...]:
    """(field name, resolved annotation) of a record dataclass, in field order (cached)."""
    kinds = _FIELD_KINDS.get(cls)
    if kinds is None:
        hints = typing.get_type_hints(cls)
        kinds = tuple((field.name, hints[field.name]) for field in dataclasses.fields(cls))
        _FIELD_KINDS[cls] = kinds
    return kinds


def _bad(field: str, message: str, reason: Reason = Reason.INVALID_FIELD) -> InputError:
    return InputError(reason, f"{field}: {message}", field=field)


def _check_value(value: object, kind: Any, field: str) -> object:  # noqa: PLR0911, PLR0912
    """Check ``value`` against the annotation ``kind``; return it, or its UTC form.

    The plain kinds come first: they are most fields, and ``typing.get_origin`` costs more
    than the checks themselves (decoding runs this for every field of every event)."""
    if kind is int:
        if type(value) is not int:
            raise _bad(field, f"expected an int, got {type(value).__name__}")
        if not _LONG_MIN <= value <= _LONG_MAX:
            raise _bad(field, f"{value} is outside the Avro long range")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise _bad(field, f"expected a str, got {type(value).__name__}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _bad(field, "is not encodable as UTF-8") from exc
        return value
    if kind is bytes:
        if not isinstance(value, bytes):
            raise _bad(field, f"expected bytes, got {type(value).__name__}")
        return value
    if kind is datetime:
        return _check_datetime(value, field)
    if kind is Decimal:
        return _check_decimal(value, field)
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, tuple):
            raise _bad(field, f"expected a tuple, got {type(value).__name__}")
        item_kind = typing.get_args(kind)[0]
        for item in value:
            _check_value(item, item_kind, field)
        return value
    if not isinstance(value, kind):
        raise _bad(field, f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _check_datetime(value: object, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise _bad(field, f"expected a datetime, got {type(value).__name__}")
    offset = value.utcoffset()
    if offset is None:
        raise _bad(field, "naive datetime; times must be timezone-aware", Reason.NAIVE_TIMESTAMP)
    if value.tzinfo is UTC:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise _bad(field, "outside the representable range in UTC") from exc


def _check_decimal(value: object, field: str) -> Decimal:
    if not isinstance(value, Decimal):
        raise _bad(field, f"expected a Decimal, got {type(value).__name__}")
    if not value.is_finite():
        raise _bad(field, f"{value} is not a finite number")
    if abs(value) >= _PCT_LIMIT:
        raise _bad(field, f"{value} needs more than 7 digits (precision 7, scale 2)")
    if value.quantize(_PCT_QUANTUM) != value:
        raise _bad(field, f"{value} has more than {_PCT_SCALE} decimal places")
    return value


def _value_to_avro(value: object) -> Any:
    if isinstance(value, _Record):
        return to_avro(value)
    if isinstance(value, tuple):
        return [_value_to_avro(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        # fastavro needs the exponent to be at least -scale; the value is already exact.
        return value.quantize(_PCT_QUANTUM)
    return value


def _value_from_avro(value: Any, kind: Any, field: str) -> Any:
    """Inverse of :func:`_value_to_avro`, guided by the field's annotation."""
    if kind is str:
        return str(value) if isinstance(value, uuid.UUID) else value  # logicalType uuid
    if kind is int or kind is bytes or kind is datetime or kind is Decimal:
        return value
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list | tuple):
            raise _bad(field, f"expected an array, got {type(value).__name__}")
        item_kind = typing.get_args(kind)[0]
        return tuple(_value_from_avro(item, item_kind, field) for item in value)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError as exc:
            raise _bad(field, f"{value!r} is not a {kind.__name__}") from exc
    if isinstance(kind, type) and issubclass(kind, _Record):
        if not isinstance(value, Mapping):
            raise _bad(field, f"expected a record, got {type(value).__name__}")
        return from_avro(kind, value)
    return value
