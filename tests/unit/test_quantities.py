"""Exact parsing of masses and timestamps (schemas/quantities.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import InputError, Reason
from schemas.quantities import MAX_GRAMS, format_mass, parse_mass, parse_timestamp

FAST = settings(max_examples=100, deadline=None)


@pytest.mark.parametrize(
    ("text", "grams"),
    [
        ("1250.5 kg", 1_250_500),
        ("1250.5kg", 1_250_500),
        ("  1250.5   kg  ", 1_250_500),
        ("800 g", 800),
        ("1 g", 1),
        ("0.001 kg", 1),
        ("2 t", 2_000_000),
        ("2.5 tonne", 2_500_000),
        ("3 tonnes", 3_000_000),
        ("0.000001 t", 1),
        ("1.000 g", 1),
        ("1250.500000 kg", 1_250_500),
        ("5 KG", 5_000),
        ("5 Kg", 5_000),
        ("7 T", 7_000_000),
        (".5 kg", 500),
        ("5. kg", 5_000),
        ("007 g", 7),
        ("9223372036854775807 g", MAX_GRAMS),
        ("9223372036854775.807 kg", MAX_GRAMS),
        ("123456789012345678 g", 123_456_789_012_345_678),
    ],
)
def test_parses_exact_grams(text: str, grams: int) -> None:
    assert parse_mass(text) == grams


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("kg", "no number"),
        ("1250.5", "no unit"),
        ("5 lb", "unknown unit"),
        ("5 mg", "unknown unit"),
        ("5 oz", "unknown unit"),
        ("-5 kg", "negative"),
        ("-0 kg", "negative"),
        ("0 kg", "zero"),
        ("0.000 t", "zero"),
        ("0.5 g", "below 1 g"),
        ("1250.0005 kg", "below 1 g"),
        ("0.0000001 t", "below 1 g"),
        ("9223372036854775808 g", "exceeds"),
        ("10000000000000 t", "exceeds"),
        ("abc kg", "not a plain decimal"),
        ("1e3 kg", "not a plain decimal"),
        ("1E3 kg", "not a plain decimal"),
        ("1,250 kg", "not a plain decimal"),
        ("1_000 kg", "not a plain decimal"),
        ("+5 kg", "not a plain decimal"),
        ("NaN kg", "not a plain decimal"),
        ("Infinity kg", "not a plain decimal"),
        ("1.2.3 kg", "not a plain decimal"),
        ("\u0661\u0662 kg", "not a plain decimal"),  # Arabic-Indic digits
        ("\uff11 kg", "not a plain decimal"),  # full-width digit
        ("5 kg extra", "not a plain decimal"),
        ("0x10 kg", "not a plain decimal"),
        ("1" * 200 + " g", "longer than"),
    ],
)
def test_rejects_bad_mass_saying_why(text: str, why: str) -> None:
    with pytest.raises(InputError) as info:
        parse_mass(text)
    assert info.value.reason is Reason.BAD_MASS
    assert why in info.value.message


@pytest.mark.parametrize("value", [None, 5, 5.0, Decimal(5), b"5 kg"])
def test_rejects_non_text_mass(value: Any) -> None:
    with pytest.raises(InputError) as info:
        parse_mass(value)
    assert info.value.reason is Reason.BAD_MASS


def test_mass_error_names_field_and_line() -> None:
    with pytest.raises(InputError) as info:
        parse_mass("5 lb", field="mass", line=12)
    assert (info.value.field, info.value.line) == ("mass", 12)
    assert info.value.diagnostics().startswith("line 12, field 'mass'")


@FAST
@given(st.integers(min_value=1, max_value=MAX_GRAMS))
def test_format_mass_reads_back_exactly(grams: int) -> None:
    assert parse_mass(format_mass(grams)) == grams


@FAST
@given(st.decimals(min_value=0, max_value=10**9, places=3), st.sampled_from(["kg", "t", "g"]))
def test_parse_mass_is_exact_decimal_arithmetic(value: Decimal, unit: str) -> None:
    factor = {"g": 1, "kg": 1000, "t": 1_000_000}[unit]
    text = f"{value:f} {unit}"
    exact = value * factor
    if exact == 0 or exact != exact.to_integral_value():
        with pytest.raises(InputError):
            parse_mass(text)
    else:
        assert parse_mass(text) == int(exact)


@FAST
@given(st.text(max_size=30))
def test_any_text_gives_grams_or_bad_mass(text: str) -> None:
    try:
        grams = parse_mass(text)
    except InputError as exc:
        reason = exc.reason
    else:
        assert 1 <= grams <= MAX_GRAMS
        return
    assert reason is Reason.BAD_MASS


# --- timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T01:30:00Z", datetime(2025, 3, 1, 1, 30, tzinfo=UTC)),
        ("2025-03-01T08:30:00+07:00", datetime(2025, 3, 1, 1, 30, tzinfo=UTC)),
        ("2025-03-01T01:30:00+00:00", datetime(2025, 3, 1, 1, 30, tzinfo=UTC)),
        ("2025-02-28T20:30:00-05:00", datetime(2025, 3, 1, 1, 30, tzinfo=UTC)),
        ("2025-03-01 01:30:00Z", datetime(2025, 3, 1, 1, 30, tzinfo=UTC)),
        ("20250301T013000Z", datetime(2025, 3, 1, 1, 30, tzinfo=UTC)),
        ("2025-03-01T01:30:00.123456Z", datetime(2025, 3, 1, 1, 30, 0, 123456, tzinfo=UTC)),
        ("2025-03-01T01:30:00.1234560Z", datetime(2025, 3, 1, 1, 30, 0, 123456, tzinfo=UTC)),
        ("2025-03-01T01:30:00,5Z", datetime(2025, 3, 1, 1, 30, 0, 500000, tzinfo=UTC)),
        ("  2025-03-01T01:30Z ", datetime(2025, 3, 1, 1, 30, tzinfo=UTC)),
    ],
)
def test_parses_iso8601_to_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["2025-03-01T01:30:00", "2025-03-01", "2025-03-01 08:30"])
def test_rejects_naive_timestamp(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_timestamp(text, field="occurred_at", line=3)
    assert info.value.reason is Reason.NAIVE_TIMESTAMP
    assert (info.value.field, info.value.line) == ("occurred_at", 3)
    assert "UTC offset" in info.value.message


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not an ISO 8601"),
        ("yesterday", "not an ISO 8601"),
        ("01/03/2025 08:30", "not an ISO 8601"),
        ("2025-02-30T00:00:00Z", "not an ISO 8601"),
        ("2025-03-01T24:00:00Z", "not an ISO 8601"),
        ("2025-03-01T01:30:00.1234567Z", "finer than a microsecond"),
        ("0001-01-01T00:00:00+01:00", "range"),
    ],
)
def test_rejects_invalid_timestamp_saying_why(text: str, why: str) -> None:
    with pytest.raises(InputError) as info:
        parse_timestamp(text)
    assert info.value.reason is Reason.INVALID_FIELD
    assert why in info.value.message


def test_rejects_non_text_timestamp() -> None:
    with pytest.raises(InputError):
        parse_timestamp(datetime.now(UTC))  # type: ignore[arg-type]


@FAST
@given(
    st.datetimes(
        min_value=datetime(1900, 1, 2),
        max_value=datetime(2999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=7)), timezone(-timedelta(hours=5, minutes=30))]
        ),
    )
)
def test_isoformat_round_trips_to_the_same_instant(moment: datetime) -> None:
    parsed = parse_timestamp(moment.isoformat())
    assert parsed == moment
    assert parsed.tzinfo is UTC


@FAST
@given(st.text(max_size=40))
def test_any_text_gives_utc_or_input_error(text: str) -> None:
    try:
        parsed = parse_timestamp(text)
    except InputError as exc:
        reason = exc.reason
    else:
        assert parsed.tzinfo is UTC
        return
    assert reason in (Reason.INVALID_FIELD, Reason.NAIVE_TIMESTAMP)
