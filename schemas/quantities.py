"""Exact parsing of masses and timestamps from emitters' input files.

Quantities in the ledger are integer grams and times are UTC instants with microsecond
resolution (DESIGN.md section 3). Parsing is strict on purpose: a value that cannot be
represented exactly is rejected with a message that says why, never rounded or truncated.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Context, Decimal

from ledger.errors import InputError, Reason

GRAMS_PER_UNIT: dict[str, int] = {
    "g": 1,
    "kg": 1_000,
    "t": 1_000_000,
    "tonne": 1_000_000,
    "tonnes": 1_000_000,
}
"""Accepted mass units (case-insensitive) and their size in grams. ``t`` is the metric tonne."""

MAX_GRAMS = 2**63 - 1
"""The largest mass the ledger stores (an Avro ``long``)."""

_MASS = re.compile(r"(?P<number>.*?)\s*(?P<unit>[A-Za-z]+)?", re.ASCII | re.DOTALL)
_PLAIN_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", re.ASCII)
_EXACT = Context(prec=10_000)
"""Enough digits that products of accepted inputs are exact (inputs are limited in length)."""
_MAX_MASS_TEXT = 100
_FRACTION = re.compile(r"[T ]\d{2}(?::?\d{2}(?::?\d{2})?)?[.,](?P<digits>\d+)", re.ASCII)
_EXAMPLE = "e.g. '1250.5 kg', '800 g' or '2 t'"


def parse_mass(text: str, *, field: str | None = None, line: int | None = None) -> int:
    """Exact integer grams of a mass such as ``"1250.5 kg"`` (-> 1250500).

    The number is plain decimal notation (digits, optional ``.`` fraction; no sign, exponent
    or thousands separator), the unit one of :data:`GRAMS_PER_UNIT`, separated by optional
    whitespace. Arithmetic is exact (:class:`~decimal.Decimal`).

    Raises:
        InputError(BAD_MASS): empty, no number, no or unknown unit, not a plain number,
            negative, zero, finer than 1 g, or larger than :data:`MAX_GRAMS`. The message
            says which.
    """

    def bad(message: str) -> InputError:
        return InputError(Reason.BAD_MASS, message, field=field, line=line)

    if not isinstance(text, str):
        raise bad(f"expected text, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise bad(f"empty mass; expected a number and a unit, {_EXAMPLE}")
    if len(stripped) > _MAX_MASS_TEXT:
        raise bad(f"mass text longer than {_MAX_MASS_TEXT} characters")
    match = _MASS.fullmatch(stripped)
    number, unit = (match["number"], match["unit"]) if match else (stripped, None)
    if not number:
        raise bad(f"no number before the unit in {stripped!r}; {_EXAMPLE}")
    if number.startswith("-"):
        raise bad(f"negative mass {stripped!r}; a mass must be positive")
    if not _PLAIN_NUMBER.fullmatch(number):
        raise bad(
            f"{number!r} is not a plain decimal number (digits with an optional '.' fraction; "
            "no sign, exponent or thousands separator)"
        )
    if unit is None:
        raise bad(f"no unit in {stripped!r}; add one of {_units()}, {_EXAMPLE}")
    factor = GRAMS_PER_UNIT.get(unit.lower())
    if factor is None:
        raise bad(f"unknown unit {unit!r}; use one of {_units()}")
    grams = _EXACT.multiply(Decimal(number), Decimal(factor))
    if grams == 0:
        raise bad(f"zero mass {stripped!r}; a mass must be positive")
    if grams != grams.to_integral_value():
        raise bad(
            f"{stripped!r} is {grams.normalize():f} g: precision below 1 g; masses are whole grams"
        )
    if grams > MAX_GRAMS:
        raise bad(f"{stripped!r} exceeds the largest storable mass ({MAX_GRAMS} g)")
    return int(grams)


def format_mass(grams: int) -> str:
    """A readable exact form of ``grams`` that :func:`parse_mass` reads back: ``"1250.5 kg"``.

    Uses the largest of ``t``, ``kg`` and ``g`` that shows the mass with at most three
    decimal places.
    """
    for unit, exponent in (("t", 6), ("kg", 3)):
        if abs(grams) >= 10**exponent and grams % 10 ** (exponent - 3) == 0:
            value = _EXACT.scaleb(Decimal(grams), -exponent)
            return f"{_EXACT.normalize(value):f} {unit}"
    return f"{grams} g"


def parse_timestamp(text: str, *, field: str | None = None, line: int | None = None) -> datetime:
    """The UTC instant of an ISO 8601 timestamp with a UTC offset, e.g.
    ``"2025-03-01T08:30:00+07:00"`` or ``"2025-03-01T01:30:00Z"``.

    Accepts what :meth:`datetime.fromisoformat` accepts (ISO 8601 extended and basic formats;
    a space instead of ``T`` as RFC 3339 allows). The result is converted to UTC.

    Raises:
        InputError(NAIVE_TIMESTAMP): no UTC offset (local time is ambiguous).
        InputError(INVALID_FIELD): not ISO 8601, finer than a microsecond, or outside the
            representable range.
    """
    if not isinstance(text, str):
        raise InputError(
            Reason.INVALID_FIELD,
            f"expected a timestamp text, got {type(text).__name__}",
            field=field,
            line=line,
        )
    stripped = text.strip()
    try:
        parsed = datetime.fromisoformat(stripped)
    except ValueError:
        raise InputError(
            Reason.INVALID_FIELD,
            f"{stripped!r} is not an ISO 8601 timestamp (e.g. '2025-03-01T08:30:00+07:00')",
            field=field,
            line=line,
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InputError(
            Reason.NAIVE_TIMESTAMP,
            f"{stripped!r} has no UTC offset; add 'Z' or an offset such as '+07:00'",
            field=field,
            line=line,
        )
    fraction = _FRACTION.search(stripped)
    if fraction and fraction["digits"][6:].strip("0"):
        raise InputError(
            Reason.INVALID_FIELD,
            f"{stripped!r} is finer than a microsecond; the ledger keeps microseconds",
            field=field,
            line=line,
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InputError(
            Reason.INVALID_FIELD,
            f"{stripped!r} is outside the representable range in UTC",
            field=field,
            line=line,
        ) from None


def _units() -> str:
    return ", ".join(GRAMS_PER_UNIT)
