"""One line of an input file, as {field: value}, into one event (or into its errors).

The field-level half of ``producers/records.py``: :func:`read_event` reads every field of a
line with a :class:`_Reader` that records each problem and goes on with a stand-in value, so
one pass reports every bad field of the line. One builder per event type says which fields the
type has and checks what a single line allows (composition adds up, outputs within inputs,
claims under mass balance only); the hub repeats those checks in ``ledger/rules.py``. The
field names and forms are specified in ``docs/emit-formats.md``.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from ledger.errors import InputError, Reason
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
    TransformInput,
    TransformOutput,
)
from schemas.materials import MaterialList
from schemas.quantities import GRAMS_PER_UNIT, parse_mass, parse_timestamp

NIL_EVENT_ID = str(uuid.UUID(int=0))
"""The event id of an event read from a line without ``event_id`` (the caller derives one)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PLACEHOLDER_G = 1
"""Stands in for a mass that failed to parse, so the rest of the line can still be checked."""
_ZERO = re.compile(r"(?:0+(?:\.0*)?|\.0+)\s*(?P<unit>[A-Za-z]+)?", re.ASCII)
"""A zero mass, allowed where a part may be empty (composition parts, claims)."""

COMMON_FIELDS = ("type", "event_id", "occurred_at")
"""Fields of every line; ``event_id`` is optional."""

FIELDS: Mapping[str, tuple[str, ...]] = {
    "BatchCreated": (
        "batch_id",
        "owner_id",
        "site_id",
        "material",
        "mass",
        "composition.virgin",
        "composition.pre_consumer",
        "composition.post_consumer",
    ),
    "BatchShipped": ("shipment_id", "batch_id", "mass", "receiver_id", "receiver_site_id"),
    "BatchReceived": ("shipment_id", "mass", "site_id"),
    "BatchTransformed": (
        "transformation_id",
        "site_id",
        "process",
        "custody_model",
        "inputs",
        "outputs",
    ),
    "CertificateIssued": (
        "certificate_id",
        "batch_id",
        "holder_id",
        "mass",
        "custody_model",
        "pre_consumer_pct",
        "post_consumer_pct",
        "period_start",
        "period_end",
        "certificate_sha256",
    ),
    "CertificateRevoked": ("certificate_id", "reason"),
}
"""The fields of each event type an input file may hold, in their documented column order."""

_COMMAND_ONLY = {
    ParticipantEnrolled.__name__: "cehub enroll",
    KeyRotated.__name__: "cehub keys rotate",
    KeyRevoked.__name__: "cehub keys revoke",
}
_INPUT_KEYS = ("batch_id", "mass")
_OUTPUT_KEYS = ("batch_id", "material", "mass", "claimed_pre_consumer", "claimed_post_consumer")

E = TypeVar("E", bound=enum.Enum)


def read_event(
    line: int, values: Mapping[str, object], *, producer_id: str, materials: MaterialList
) -> tuple[Event | None, list[InputError]]:
    """The event of one line (``producer_seq`` 0, ``event_id`` :data:`NIL_EVENT_ID` when the
    line has none), or ``None`` and every error of the line."""
    reader = _Reader(line, values, materials)
    type_name = reader.event_type()
    if type_name is None:
        return None, reader.errors
    event_id, occurred_at = reader.event_id(), reader.timestamp("occurred_at")
    try:
        header = EventHeader(event_id, producer_id, 0, occurred_at)
        event = _BUILDERS[type_name](reader, header)
    except InputError as exc:  # a form the record itself refuses (Avro long range, ...)
        reader.errors.append(InputError(exc.reason, exc.message, line=line, field=exc.field))
        return None, reader.errors
    reader.reject_unused(type_name)
    return (None, reader.errors) if reader.errors else (event, [])


class _Reader:
    """Reads the fields of one row, recording each problem and returning a stand-in value, so
    that every field of the line is checked."""

    def __init__(self, line: int, values: Mapping[str, object], materials: MaterialList) -> None:
        self.line = line
        self.values = values
        self.materials = materials
        self.errors: list[InputError] = []
        self.used: set[str] = set()

    def fail(self, reason: Reason, field: str | None, message: str) -> None:
        self.errors.append(InputError(reason, message, line=self.line, field=field))

    def raw(self, field: str, *, required: bool = True) -> object | None:
        self.used.add(field)
        value = self.values.get(field)
        if value is None or value == "":
            if required:
                self.fail(Reason.MISSING_FIELD, field, "required field is missing or empty")
            return None
        return value

    def text(self, field: str, *, default: str | None = None) -> str:
        value = self.raw(field, required=default is None)
        if value is None:
            return default or ""
        if not isinstance(value, str):
            self.fail(Reason.INVALID_FIELD, field, f"expected text, got {json_kind(value)}")
            return ""
        return value.strip()

    def event_type(self) -> str | None:
        name = self.text("type")
        if not name:
            return None
        short = name.removeprefix("org.cehub.v1.")
        if short in FIELDS:
            return short
        if short in _COMMAND_ONLY:
            message = f"{short} events are made by `{_COMMAND_ONLY[short]}`, not from a file"
        else:
            message = f"unknown event type {name!r}; expected one of {', '.join(FIELDS)}"
        self.fail(Reason.UNKNOWN_EVENT_TYPE, "type", message)
        return None

    def event_id(self) -> str:
        value = self.text("event_id", default="")
        if not value:
            return NIL_EVENT_ID
        try:
            event_id = str(uuid.UUID(value))
        except ValueError:
            self.fail(Reason.INVALID_FIELD, "event_id", f"{value!r} is not a UUID")
            return NIL_EVENT_ID
        if event_id == NIL_EVENT_ID:
            self.fail(Reason.INVALID_FIELD, "event_id", "the nil UUID is not an event id")
        return event_id

    def mass(self, field: str) -> int:
        text = self.text(field)
        if not text:
            return _PLACEHOLDER_G
        try:
            return parse_mass(text, field=field, line=self.line)
        except InputError as exc:
            self.errors.append(exc)
            return _PLACEHOLDER_G

    def part(self, field: str) -> int:
        """A mass that may be absent or zero (a composition part, a claim): 0 when so."""
        text = self.text(field, default="")
        zero = _ZERO.fullmatch(text)
        if not text or (zero and (zero["unit"] or "g").lower() in GRAMS_PER_UNIT):
            return 0
        return self.mass(field)

    def timestamp(self, field: str) -> datetime:
        text = self.text(field)
        if not text:
            return _EPOCH
        try:
            return parse_timestamp(text, field=field, line=self.line)
        except InputError as exc:
            self.errors.append(exc)
            return _EPOCH

    def material(self, field: str) -> str:
        code = self.text(field)
        if code and code not in self.materials:
            hint = f"; did you mean {code.upper()!r}?" if code.upper() in self.materials else ""
            self.fail(Reason.UNKNOWN_MATERIAL, field, f"unknown material code {code!r}{hint}")
        return code

    def choice(self, field: str, kind: type[E]) -> E | None:
        text = self.text(field)
        if not text:
            return None
        key = text.upper().replace("-", "_").replace(" ", "_")
        try:
            return kind[key]
        except KeyError:
            names = ", ".join(member.name for member in kind)
            self.fail(Reason.INVALID_FIELD, field, f"{text!r} is not one of {names}")
            return None

    def percent(self, field: str) -> Decimal:
        text = self.text(field).removesuffix("%").strip()
        if not text:
            return Decimal(0)
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or not 0 <= value <= 100:
            self.fail(Reason.INVALID_FIELD, field, f"{text!r} is not a percentage from 0 to 100")
            return Decimal(0)
        if value != value.quantize(Decimal("0.01")):
            self.fail(Reason.INVALID_FIELD, field, f"{text!r} has more than 2 decimal places")
            return Decimal(0)
        return value.quantize(Decimal("0.01"))

    def sha256(self, field: str) -> bytes:
        text = self.text(field)
        if not text:
            return bytes(32)
        try:
            digest = bytes.fromhex(text)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            self.fail(Reason.INVALID_FIELD, field, "expected 64 hexadecimal digits (SHA-256)")
            return bytes(32)
        return digest

    def items(self, field: str, keys: tuple[str, ...]) -> list[tuple[str, Mapping[str, object]]]:
        """The entries of ``inputs`` / ``outputs``: (field name for errors, {key: value})."""
        value = self.raw(field)
        if value is None:
            return []
        if isinstance(value, str):
            return _compact_items(self, field, value, keys)
        if not isinstance(value, list) or not value:
            self.fail(Reason.INVALID_FIELD, field, "expected a non-empty array or compact text")
            return []
        entries: list[tuple[str, Mapping[str, object]]] = []
        for index, item in enumerate(value):
            where = f"{field}[{index}]"
            if not isinstance(item, dict):
                self.fail(Reason.INVALID_FIELD, where, f"expected an object, got {json_kind(item)}")
                continue
            unknown = sorted(set(item) - set(keys))
            if unknown:
                self.fail(Reason.INVALID_FIELD, where, f"unknown key(s) {', '.join(unknown)}")
            entries.append((where, item))
        return entries

    def reject_unused(self, type_name: str) -> None:
        for field in self.values:
            if field not in self.used:
                self.fail(
                    Reason.INVALID_FIELD,
                    field,
                    f"not a field of {type_name} (its fields: {', '.join(FIELDS[type_name])})",
                )


def json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return f"the number {value} (write it as text, with its unit for a mass)"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _compact_items(
    reader: _Reader, field: str, text: str, keys: tuple[str, ...]
) -> list[tuple[str, Mapping[str, object]]]:
    """``b1=1200 kg; b2=300 kg`` or ``p1=1400 kg, material=PET_PELLET`` (docs/emit-formats.md)."""
    entries: list[tuple[str, Mapping[str, object]]] = []
    chunks = [part.strip() for part in text.split(";")]
    if not any(chunks):
        reader.fail(Reason.MISSING_FIELD, field, "no entries")
    for index, chunk in enumerate(chunks):
        if not chunk:
            continue
        where = f"{field}[{index}]"
        first, *attributes = (piece.strip() for piece in chunk.split(","))
        batch_id, sep, mass = first.partition("=")
        if not sep:
            reader.fail(Reason.INVALID_FIELD, where, f"{chunk!r}: expected BATCH=MASS first")
            continue
        item: dict[str, object] = {"batch_id": batch_id.strip(), "mass": mass.strip()}
        for attribute in attributes:
            key, sep, value = attribute.partition("=")
            if not sep or key.strip() not in keys or key.strip() in item:
                reader.fail(
                    Reason.INVALID_FIELD,
                    where,
                    f"{attribute!r}: expected one of {', '.join(keys[2:])}=VALUE"
                    if len(keys) > 2
                    else f"{attribute!r}: an input is just BATCH=MASS",
                )
                continue
            item[key.strip()] = value.strip()
        entries.append((where, item))
    return entries


def _sub_reader(parent: _Reader, where: str, item: Mapping[str, object]) -> _Reader:
    """A reader over one inputs/outputs entry whose field names read ``outputs[0].mass``."""
    values = {f"{where}.{key}": value for key, value in item.items()}
    sub = _Reader(parent.line, values, parent.materials)
    sub.errors = parent.errors
    return sub


# --- the builders, one per event type ----------------------------------------------------------


def _batch_created(r: _Reader, header: EventHeader) -> BatchCreated:
    before = len(r.errors)
    mass_g = r.mass("mass")
    composition = Composition(
        virgin_g=r.part("composition.virgin"),
        pre_consumer_g=r.part("composition.pre_consumer"),
        post_consumer_g=r.part("composition.post_consumer"),
    )
    if len(r.errors) == before and composition.total_g != mass_g:
        r.fail(
            Reason.INVALID_COMPOSITION,
            "composition",
            f"virgin + pre_consumer + post_consumer = {composition.total_g} g, "
            f"but the mass is {mass_g} g; the parts must add up to the mass",
        )
    return BatchCreated(
        header=header,
        batch_id=r.text("batch_id"),
        owner_id=r.text("owner_id", default=header.producer_id),
        site_id=r.text("site_id"),
        material=r.material("material"),
        mass_g=mass_g,
        composition=composition,
    )


def _batch_shipped(r: _Reader, header: EventHeader) -> BatchShipped:
    return BatchShipped(
        header=header,
        shipment_id=r.text("shipment_id"),
        batch_id=r.text("batch_id"),
        mass_g=r.mass("mass"),
        receiver_id=r.text("receiver_id"),
        receiver_site_id=r.text("receiver_site_id"),
    )


def _batch_received(r: _Reader, header: EventHeader) -> BatchReceived:
    return BatchReceived(
        header=header,
        shipment_id=r.text("shipment_id"),
        mass_g=r.mass("mass"),
        site_id=r.text("site_id"),
    )


def _batch_transformed(r: _Reader, header: EventHeader) -> BatchTransformed:
    before = len(r.errors)
    custody = r.choice("custody_model", CustodyModel)
    inputs = tuple(
        TransformInput(batch_id=s.text(f"{w}.batch_id"), mass_g=s.mass(f"{w}.mass"))
        for w, item in r.items("inputs", _INPUT_KEYS)
        for s in (_sub_reader(r, w, item),)
    )
    outputs = tuple(
        TransformOutput(
            batch_id=s.text(f"{w}.batch_id"),
            material=s.material(f"{w}.material"),
            mass_g=s.mass(f"{w}.mass"),
            claimed_pre_consumer_g=s.part(f"{w}.claimed_pre_consumer"),
            claimed_post_consumer_g=s.part(f"{w}.claimed_post_consumer"),
        )
        for w, item in r.items("outputs", _OUTPUT_KEYS)
        for s in (_sub_reader(r, w, item),)
    )
    if len(r.errors) == before and custody is not None:
        _check_transformation(r, custody, inputs, outputs)
    return BatchTransformed(
        header=header,
        transformation_id=r.text("transformation_id"),
        site_id=r.text("site_id"),
        process=r.choice("process", Process) or Process.OTHER,
        custody_model=custody or CustodyModel.SEGREGATION,
        inputs=inputs,
        outputs=outputs,
    )


def _check_transformation(
    r: _Reader,
    custody: CustodyModel,
    inputs: tuple[TransformInput, ...],
    outputs: tuple[TransformOutput, ...],
) -> None:
    """The checks a single line allows (the hub repeats them, ledger/rules.py)."""
    out_ids = [out.batch_id for out in outputs]
    if len(set(out_ids)) != len(out_ids):
        r.fail(Reason.DUPLICATE_BATCH, "outputs", "the outputs repeat a batch id")
    input_g = sum(item.mass_g for item in inputs)
    output_g = sum(out.mass_g for out in outputs)
    if output_g > input_g:
        r.fail(
            Reason.OUTPUT_EXCEEDS_INPUT,
            "outputs",
            f"outputs weigh {output_g} g but the inputs consumed only {input_g} g",
        )
    for index, out in enumerate(outputs):
        claims = out.claimed_pre_consumer_g + out.claimed_post_consumer_g
        if claims and custody is not CustodyModel.MASS_BALANCE:
            r.fail(
                Reason.INVALID_COMPOSITION,
                f"outputs[{index}]",
                f"recycled-content claims are for MASS_BALANCE only; under {custody.value} "
                "outputs inherit the composition of their inputs",
            )
        elif claims > out.mass_g:
            r.fail(
                Reason.INVALID_COMPOSITION,
                f"outputs[{index}]",
                f"claims {claims} g of recycled content but weighs {out.mass_g} g",
            )


def _certificate_issued(r: _Reader, header: EventHeader) -> CertificateIssued:
    before = len(r.errors)
    pre, post = r.percent("pre_consumer_pct"), r.percent("post_consumer_pct")
    if len(r.errors) == before and pre + post > 100:
        r.fail(Reason.INVALID_FIELD, "post_consumer_pct", f"{pre} % + {post} % exceed 100 %")
    before = len(r.errors)
    start, end = r.timestamp("period_start"), r.timestamp("period_end")
    if len(r.errors) == before and start >= end:
        r.fail(Reason.INVALID_FIELD, "period_end", "the period ends before it starts")
    return CertificateIssued(
        header=header,
        certificate_id=r.text("certificate_id"),
        batch_id=r.text("batch_id"),
        holder_id=r.text("holder_id"),
        mass_g=r.mass("mass"),
        custody_model=r.choice("custody_model", CustodyModel) or CustodyModel.SEGREGATION,
        pre_consumer_pct=pre,
        post_consumer_pct=post,
        period_start=start,
        period_end=end,
        certificate_sha256=r.sha256("certificate_sha256"),
    )


def _certificate_revoked(r: _Reader, header: EventHeader) -> CertificateRevoked:
    return CertificateRevoked(
        header=header, certificate_id=r.text("certificate_id"), reason=r.text("reason")
    )


_BUILDERS: Mapping[str, Callable[[_Reader, EventHeader], Event]] = {
    "BatchCreated": _batch_created,
    "BatchShipped": _batch_shipped,
    "BatchReceived": _batch_received,
    "BatchTransformed": _batch_transformed,
    "CertificateIssued": _certificate_issued,
    "CertificateRevoked": _certificate_revoked,
}
