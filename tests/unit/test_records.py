"""Input files of the emitter (producers/records.py, docs/emit-formats.md).

What these defend: every bad field is reported with its line and field, all errors of a file
are collected, nothing bad becomes an event, equivalent CSV and JSON Lines give identical
events, and derived event ids are deterministic (so a re-run after a crash is a duplicate, not
a new event).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import InputError, Reason
from producers.records import (
    CSV_COLUMNS,
    FIELDS,
    Draft,
    ParseResult,
    derive_event_id,
    format_of,
    parse_records,
)
from schemas.events import (
    BatchCreated,
    BatchTransformed,
    CertificateIssued,
    Composition,
    CustodyModel,
    Process,
)
from schemas.quantities import format_mass

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
PRODUCER = "siam-recycling"

CREATED = {
    "type": "BatchCreated",
    "occurred_at": "2025-03-03T08:00:00+07:00",
    "batch_id": "siam-recycling/bale-0001",
    "site_id": "srb1",
    "material": "PET_BALE",
    "mass": "12.5 t",
    "composition": {"virgin": "2.5 t", "post_consumer": "10 t"},
}
SHIPPED = {
    "type": "BatchShipped",
    "occurred_at": "2025-03-05T10:30:00+07:00",
    "shipment_id": "siam-recycling/ship-0001",
    "batch_id": "siam-recycling/bale-0001",
    "mass": "10 t",
    "receiver_id": "thai-bottles",
    "receiver_site_id": "ryg1",
}
TRANSFORMED = {
    "type": "BatchTransformed",
    "occurred_at": "2025-03-04T16:00:00+07:00",
    "transformation_id": "siam-recycling/wash-0001",
    "site_id": "srb1",
    "process": "WASHING",
    "custody_model": "SEGREGATION",
    "inputs": [{"batch_id": "siam-recycling/bale-0001", "mass": "12.5 t"}],
    "outputs": [{"batch_id": "siam-recycling/flake-0001", "material": "PET_FLAKE", "mass": "11 t"}],
}
ISSUED = {
    "type": "CertificateIssued",
    "occurred_at": "2025-04-01T09:00:00+07:00",
    "certificate_id": "ce-certify/cert-1",
    "batch_id": "thai-bottles/pellet-0001",
    "holder_id": "thai-bottles",
    "mass": "15 t",
    "custody_model": "MASS_BALANCE",
    "pre_consumer_pct": "0",
    "post_consumer_pct": "50.25",
    "period_start": "2025-01-01T00:00:00+07:00",
    "period_end": "2025-04-01T00:00:00+07:00",
    "certificate_sha256": "ab" * 32,
}


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(obj) + "\n" for obj in objects)


def parse_jsonl(*objects: object, producer_id: str = PRODUCER) -> ParseResult:
    return parse_records(jsonl(*objects), "jsonl", producer_id=producer_id)


def parse_csv(text: str, producer_id: str = PRODUCER) -> ParseResult:
    return parse_records(text, "csv", producer_id=producer_id)


def only_error(result: ParseResult) -> InputError:
    assert not result.drafts
    assert len(result.errors) == 1, [e.diagnostics() for e in result.errors]
    return result.errors[0]


def with_(base: Mapping[str, object], **changes: object) -> dict[str, object]:
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not None}


# --- valid input ----------------------------------------------------------------------------------


def test_parses_a_batch_in_exact_grams_and_utc() -> None:
    result = parse_jsonl(CREATED)
    assert not result.errors
    (draft,) = result.drafts
    event = draft.event
    assert isinstance(event, BatchCreated)
    assert draft.line == 1
    assert event.mass_g == 12_500_000
    assert event.composition == Composition(2_500_000, 0, 10_000_000)
    assert event.owner_id == PRODUCER  # defaults to the producer
    assert event.header.occurred_at == datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
    assert event.header.producer_id == PRODUCER


def test_draft_gets_its_sequence_number_only_when_sequenced() -> None:
    (draft,) = parse_jsonl(CREATED).drafts
    event = draft.sequenced(41)
    assert event.header.producer_seq == 41
    assert event.header.event_id == draft.event_id
    assert draft.event.header.producer_seq == 0


def test_units_g_kg_t_are_exact() -> None:
    lines = [
        with_(SHIPPED, shipment_id=f"s{i}", mass=mass)
        for i, mass in enumerate(["900 g", "1250.5 kg", "3 t", "0.001 kg", "2 tonnes"])
    ]
    result = parse_jsonl(*lines)
    assert not result.errors
    grams = [d.event.mass_g for d in result.drafts]  # type: ignore[union-attr]
    assert grams == [900, 1_250_500, 3_000_000, 1, 2_000_000]


def test_transformation_inputs_and_outputs_compact_or_structured_are_the_same() -> None:
    compact = with_(
        TRANSFORMED,
        inputs="siam-recycling/bale-0001=12.5 t",
        outputs="siam-recycling/flake-0001=11 t, material=PET_FLAKE",
    )
    a, b = parse_jsonl(TRANSFORMED).drafts, parse_jsonl(compact).drafts
    assert a[0].event == b[0].event
    event = a[0].event
    assert isinstance(event, BatchTransformed)
    assert event.process is Process.WASHING
    assert event.custody_model is CustodyModel.SEGREGATION
    assert event.outputs[0].mass_g == 11_000_000


def test_enum_values_are_case_and_dash_insensitive() -> None:
    line = with_(TRANSFORMED, process="co-processing", custody_model="controlled blending")
    event = parse_jsonl(line).drafts[0].event
    assert isinstance(event, BatchTransformed)
    assert event.process is Process.CO_PROCESSING
    assert event.custody_model is CustodyModel.CONTROLLED_BLENDING


def test_certificate_percentages_are_exact_decimals() -> None:
    event = parse_jsonl(with_(ISSUED, post_consumer_pct="50.25 %")).drafts[0].event
    assert isinstance(event, CertificateIssued)
    assert event.post_consumer_pct == Decimal("50.25")
    assert event.pre_consumer_pct == Decimal("0.00")
    assert event.certificate_sha256 == bytes.fromhex("ab" * 32)


def test_blank_lines_are_skipped_and_lines_keep_their_numbers() -> None:
    text = "\n" + jsonl(CREATED) + "\n\n" + jsonl(SHIPPED)
    result = parse_records(text, "jsonl", producer_id=PRODUCER)
    assert [d.line for d in result.drafts] == [2, 5]
    assert result.lines == 2


# --- errors: line, field, reason -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"mass": "12 lb"}, "mass", Reason.BAD_MASS),
        ({"mass": "12"}, "mass", Reason.BAD_MASS),
        ({"mass": "-3 kg"}, "mass", Reason.BAD_MASS),
        ({"mass": "0 kg"}, "mass", Reason.BAD_MASS),
        ({"mass": "0.5 g"}, "mass", Reason.BAD_MASS),
        ({"mass": "1,250 kg"}, "mass", Reason.BAD_MASS),
        ({"mass": 1250}, "mass", Reason.INVALID_FIELD),
        ({"mass": None}, "mass", Reason.MISSING_FIELD),
        ({"occurred_at": "2025-03-03T08:00:00"}, "occurred_at", Reason.NAIVE_TIMESTAMP),
        ({"occurred_at": "3 March 2025"}, "occurred_at", Reason.INVALID_FIELD),
        ({"occurred_at": None}, "occurred_at", Reason.MISSING_FIELD),
        ({"material": "PET-BALE"}, "material", Reason.UNKNOWN_MATERIAL),
        ({"material": "pet_bale"}, "material", Reason.UNKNOWN_MATERIAL),
        ({"batch_id": None}, "batch_id", Reason.MISSING_FIELD),
        ({"batch_id": ""}, "batch_id", Reason.MISSING_FIELD),
        ({"site_id": 7}, "site_id", Reason.INVALID_FIELD),
        ({"event_id": "not-a-uuid"}, "event_id", Reason.INVALID_FIELD),
        ({"producer_seq": "3"}, "producer_seq", Reason.INVALID_FIELD),
        ({"colour": "green"}, "colour", Reason.INVALID_FIELD),
        ({"composition": {"virgin": "2.5 t", "post_consumer": "9 t"}}, "composition", None),
        ({"composition": {"virgin": "12.5 t", "recycled": "1 t"}}, "composition.recycled", None),
        (
            {"composition": {"virgin": "12.5 t", "post_consumer": "0 lb"}},
            "composition.post_consumer",
            Reason.BAD_MASS,
        ),
        ({"type": "Batch"}, "type", Reason.UNKNOWN_EVENT_TYPE),
        ({"type": "ParticipantEnrolled"}, "type", Reason.UNKNOWN_EVENT_TYPE),
        ({"type": None}, "type", Reason.MISSING_FIELD),
    ],
)
def test_each_bad_field_is_reported_with_line_field_and_reason(
    change: dict[str, object], field: str | None, reason: Reason | None
) -> None:
    result = parse_jsonl(SHIPPED, SHIPPED | {"shipment_id": "s2"}, with_(CREATED, **change))
    assert len(result.drafts) == 2
    error = result.errors[0]
    assert len(result.errors) == 1, [e.diagnostics() for e in result.errors]
    assert error.line == 3
    if field is not None:
        assert error.field == field
        assert error.diagnostics().startswith(f"line 3, field '{field}': ")
    expected = reason or (
        Reason.INVALID_COMPOSITION if field == "composition" else Reason.INVALID_FIELD
    )
    assert error.reason is expected


def test_diagnostics_name_line_field_and_reason() -> None:
    lines = [with_(SHIPPED, shipment_id=f"s{i}") for i in range(6)]
    lines.append(with_(SHIPPED, shipment_id="s7", mass="12 lb"))
    error = only_error(parse_jsonl(lines[-1]))
    assert error.diagnostics() == (
        "line 1, field 'mass': unknown unit 'lb'; use one of g, kg, t, tonne, tonnes "
        "[input.bad_mass]"
    )
    result = parse_jsonl(*lines)
    assert result.errors[0].diagnostics().startswith("line 7, field 'mass': ")


def test_collects_every_error_of_a_file_not_just_the_first() -> None:
    lines: list[object] = [with_(SHIPPED, shipment_id=f"s{i}") for i in range(10)]
    lines[1] = with_(SHIPPED, shipment_id="s1", mass="3 lb")
    lines[4] = with_(SHIPPED, shipment_id="s4", occurred_at="2025-03-05 10:30")
    lines[8] = with_(SHIPPED, shipment_id="s8", receiver_id=None)
    result = parse_jsonl(*lines)
    assert result.bad_lines == (2, 5, 9)
    assert [(e.line, e.field) for e in result.errors] == [
        (2, "mass"),
        (5, "occurred_at"),
        (9, "receiver_id"),
    ]
    assert len(result.drafts) == 7
    assert result.lines == 10


def test_every_bad_field_of_one_line_is_reported() -> None:
    line = with_(CREATED, mass="3 lb", material="GOLD", occurred_at="yesterday", site_id=None)
    result = parse_jsonl(line)
    assert {e.field for e in result.errors} == {"mass", "material", "occurred_at", "site_id"}
    assert {e.line for e in result.errors} == {1}


def test_rejects_lines_that_are_not_json_objects() -> None:
    text = jsonl(CREATED) + "{not json\n" + "[1, 2]\n" + '{"type": "BatchCreated", "type": "X"}\n'
    result = parse_records(text, "jsonl", producer_id=PRODUCER)
    assert result.bad_lines == (2, 3, 4)
    assert all(e.reason is Reason.INVALID_FIELD for e in result.errors)
    assert "repeated key" in result.errors[2].message


def test_rejects_a_repeated_line_that_would_spend_two_sequence_numbers() -> None:
    result = parse_jsonl(CREATED, SHIPPED, CREATED)
    assert len(result.drafts) == 2
    error = only_error(ParseResult((), result.errors, 3))
    assert (error.line, error.field, error.reason) == (3, "event_id", Reason.DUPLICATE_EVENT)
    assert "line 1" in error.message


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"outputs": "siam-recycling/flake-0001=13 t, material=PET_FLAKE"}, "outputs", None),
        (
            {"outputs": "f1=6 t, material=PET_FLAKE; f1=5 t, material=PET_FLAKE"},
            "outputs",
            Reason.DUPLICATE_BATCH,
        ),
        (
            {"outputs": "f1=6 t, material=PET_FLAKE, claimed_post_consumer=1 t"},
            "outputs[0]",
            Reason.INVALID_COMPOSITION,
        ),
        ({"outputs": "f1=6 t"}, "outputs[0].material", Reason.MISSING_FIELD),
        ({"outputs": "f1=6 t, material=PET_FLAKE, colour=green"}, "outputs[0]", None),
        ({"outputs": "f1 6 t"}, "outputs[0]", None),
        ({"inputs": "b1=6 lb"}, "inputs[0].mass", Reason.BAD_MASS),
        ({"inputs": "b1=6 t, material=PET"}, "inputs[0]", None),
        ({"inputs": []}, "inputs", None),
        ({"inputs": [{"batch_id": "b1", "mass": "1 t", "x": 1}]}, "inputs[0]", None),
        ({"inputs": ["b1"]}, "inputs[0]", None),
        ({"inputs": None}, "inputs", Reason.MISSING_FIELD),
        ({"process": "melting"}, "process", None),
        ({"custody_model": "BOOK_AND_CLAIM"}, "custody_model", None),
    ],
)
def test_transformation_errors_name_the_entry(
    change: dict[str, object], field: str, reason: Reason | None
) -> None:
    error = only_error(parse_jsonl(with_(TRANSFORMED, **change)))
    assert error.field == field, error.diagnostics()
    default = Reason.OUTPUT_EXCEEDS_INPUT if "13 t" in str(change) else Reason.INVALID_FIELD
    assert error.reason is (reason or default)


def test_mass_balance_claims_may_not_exceed_the_output() -> None:
    ok = with_(
        TRANSFORMED,
        custody_model="MASS_BALANCE",
        outputs="f1=6 t, material=PET_FLAKE, claimed_post_consumer=6 t, claimed_pre_consumer=0",
    )
    assert not parse_jsonl(ok).errors
    too_much = with_(
        ok,
        outputs="f1=6 t, material=PET_FLAKE, claimed_post_consumer=5 t, claimed_pre_consumer=2 t",
    )
    error = only_error(parse_jsonl(too_much))
    assert (error.field, error.reason) == ("outputs[0]", Reason.INVALID_COMPOSITION)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"post_consumer_pct": "100.5"}, "post_consumer_pct"),
        ({"post_consumer_pct": "50.255"}, "post_consumer_pct"),
        ({"post_consumer_pct": 50.25}, "post_consumer_pct"),
        ({"pre_consumer_pct": "60"}, "post_consumer_pct"),
        ({"period_end": "2024-12-31T00:00:00Z"}, "period_end"),
        ({"certificate_sha256": "abcd"}, "certificate_sha256"),
        ({"certificate_sha256": "zz" * 32}, "certificate_sha256"),
    ],
)
def test_certificate_errors(change: dict[str, object], field: str) -> None:
    error = only_error(parse_jsonl(with_(ISSUED, **change)))
    assert error.field == field
    assert error.reason is Reason.INVALID_FIELD


# --- CSV ------------------------------------------------------------------------------------------

CSV_CREATED = (
    "type,occurred_at,batch_id,site_id,material,mass,composition.virgin,"
    "composition.pre_consumer,composition.post_consumer\n"
    "BatchCreated,2025-03-03T01:00:00Z,siam-recycling/bale-0001,srb1,PET_BALE,12500 kg,"
    "2.5 t,,10 t\n"
)


def test_csv_and_jsonl_give_identical_events_for_equivalent_input() -> None:
    from_csv = parse_csv(CSV_CREATED)
    from_jsonl = parse_jsonl(CREATED)
    assert not from_csv.errors
    assert [d.event for d in from_csv.drafts] == [d.event for d in from_jsonl.drafts]
    assert from_csv.drafts[0].line == 2


@pytest.mark.parametrize("stem", ["recycler", "converter", "certifier"])
def test_documented_examples_parse_identically_from_csv_and_jsonl(stem: str) -> None:
    """docs/examples/ are part of docs/emit-formats.md; this keeps them from rotting."""
    producer = {"recycler": "siam-recycling", "converter": "thai-bottles"}.get(stem, "ce-certify")
    from_jsonl = parse_records(
        (EXAMPLES / f"{stem}.jsonl").read_text("utf-8"), "jsonl", producer_id=producer
    )
    from_csv = parse_records(
        (EXAMPLES / f"{stem}.csv").read_text("utf-8"), "csv", producer_id=producer
    )
    assert not from_jsonl.errors, [e.diagnostics() for e in from_jsonl.errors]
    assert not from_csv.errors, [e.diagnostics() for e in from_csv.errors]
    assert from_jsonl.drafts
    assert [d.event for d in from_csv.drafts] == [d.event for d in from_jsonl.drafts]


def test_getting_started_example_is_valid() -> None:
    result = parse_records(
        (EXAMPLES / "first-batches.csv").read_text("utf-8"), "csv", producer_id="srb-cement"
    )
    assert not result.errors, [e.diagnostics() for e in result.errors]
    assert len(result.drafts) == 2


def test_every_documented_field_is_a_csv_column() -> None:
    doc = (EXAMPLES.parent / "emit-formats.md").read_text("utf-8")
    for column in CSV_COLUMNS:
        assert f"`{column}`" in doc, column
    for type_name in FIELDS:
        assert f"### {type_name}" in doc, type_name


@pytest.mark.parametrize("page", ["emit-formats.md", "getting-started-factory.md"])
def test_code_examples_in_the_docs_parse(page: str) -> None:
    text = (EXAMPLES.parent / page).read_text("utf-8")
    blocks = [block.split("\n", 1) for block in text.split("```")[1::2]]
    checked = 0
    for kind, body in blocks:
        if kind == "csv" or (kind == "json" and body.startswith("{")):
            result = parse_records(body, "csv" if kind == "csv" else "jsonl", producer_id="doc")
            assert result.drafts, body
            assert not result.errors, [e.diagnostics() for e in result.errors]
            checked += 1
    assert checked


def test_csv_header_problems_are_reported_on_line_1() -> None:
    result = parse_csv("batch_id,mass\nb1,1 kg\n")
    assert [(e.line, e.field, e.reason) for e in result.errors] == [
        (1, "type", Reason.MISSING_FIELD)
    ]
    result = parse_csv(CSV_CREATED.replace("site_id", "site"))
    assert [(e.line, e.field) for e in result.errors] == [(1, "site"), (2, "site_id")]


def test_csv_cell_of_another_event_type_is_rejected() -> None:
    text = "type,occurred_at,shipment_id,mass,site_id,material\n"
    text += "BatchReceived,2025-03-05T10:30:00Z,s1,1 t,ryg1,PET\n"
    error = only_error(parse_csv(text))
    assert (error.line, error.field) == (2, "material")


def test_csv_line_numbers_count_physical_lines() -> None:
    text = (
        "type,occurred_at,certificate_id,reason\n"
        '\nCertificateRevoked,2025-05-02T10:00:00Z,c1,"two\nlines"\n'
        "CertificateRevoked,2025-05-02T10:00:00,c2,late\n"
        "CertificateRevoked,2025-05-02T10:00:00Z,c3,a,b\n"
    )
    result = parse_csv(text)
    assert [d.line for d in result.drafts] == [3]
    assert [(e.line, e.field) for e in result.errors] == [(5, "occurred_at"), (6, None)]


def test_csv_with_byte_order_mark_and_crlf() -> None:
    text = "\ufeff" + CSV_CREATED.replace("\n", "\r\n")
    assert [d.event for d in parse_csv(text).drafts] == [
        d.event for d in parse_jsonl(CREATED).drafts
    ]


# --- event ids ------------------------------------------------------------------------------------


def test_event_ids_are_deterministic_uuid5() -> None:
    first = parse_jsonl(CREATED, SHIPPED).drafts
    again = parse_jsonl(CREATED, SHIPPED).drafts
    assert [d.event_id for d in first] == [d.event_id for d in again]
    assert uuid.UUID(first[0].event_id).version == 5
    assert first[0].event_id == derive_event_id(first[0].event)


def test_event_id_changes_with_producer_and_with_any_content() -> None:
    base = parse_jsonl(CREATED).drafts[0].event_id
    assert parse_jsonl(CREATED, producer_id="other").drafts[0].event_id != base
    assert parse_jsonl(with_(CREATED, mass="12.501 t", composition={"virgin": "12.501 t"}))
    changed = [
        with_(CREATED, batch_id="siam-recycling/bale-0002"),
        with_(CREATED, occurred_at="2025-03-03T08:00:01+07:00"),
        with_(CREATED, composition={"virgin": "2.5 t", "pre_consumer": "10 t"}),
    ]
    ids = {d.event_id for d in parse_jsonl(*changed).drafts}
    assert len(ids) == 3
    assert base not in ids


def test_event_id_does_not_depend_on_the_sequence_number() -> None:
    (draft,) = parse_jsonl(CREATED).drafts
    assert derive_event_id(draft.sequenced(7)) == derive_event_id(draft.sequenced(0))


def test_given_event_id_is_kept_in_canonical_form() -> None:
    given_id = "0B6F3F3E-6D1C-4C56-9A55-2A8F9D3C7E11"
    (draft,) = parse_jsonl(with_(CREATED, event_id=given_id)).drafts
    assert draft.event_id == given_id.lower()


def test_format_follows_the_extension() -> None:
    assert format_of(Path("a.JSONL")) == "jsonl"
    assert format_of(Path("a.ndjson")) == "jsonl"
    assert format_of(Path("a.csv")) == "csv"
    with pytest.raises(InputError):
        format_of(Path("a.xlsx"))


# --- properties -----------------------------------------------------------------------------------

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-/_.", min_size=1, max_size=20)
grams = st.integers(min_value=1, max_value=10**15)


@settings(max_examples=100, deadline=None)
@given(batch_id=ids, site_id=ids, virgin=grams, post=grams, micros=st.integers(0, 2**40))
def test_csv_and_jsonl_agree_for_any_batch(
    batch_id: str, site_id: str, virgin: int, post: int, micros: int
) -> None:
    moment = datetime.fromtimestamp(micros / 1e6, tz=UTC).isoformat()
    mass = format_mass(virgin + post)
    line = with_(
        CREATED,
        batch_id=batch_id,
        site_id=site_id,
        mass=mass,
        occurred_at=moment,
        composition={"virgin": format_mass(virgin), "post_consumer": format_mass(post)},
    )
    csv_text = (
        "type,occurred_at,batch_id,site_id,material,mass,composition.virgin,"
        "composition.post_consumer\n"
        f"BatchCreated,{moment},{batch_id},{site_id},PET_BALE,{mass},"
        f"{format_mass(virgin)},{format_mass(post)}\n"
    )
    from_jsonl, from_csv = parse_jsonl(line), parse_csv(csv_text)
    assert not from_jsonl.errors
    assert [d.event for d in from_csv.drafts] == [d.event for d in from_jsonl.drafts]
    event = from_jsonl.drafts[0].event
    assert isinstance(event, BatchCreated)
    assert event.mass_g == virgin + post


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300), fmt=st.sampled_from(["jsonl", "csv"]))
def test_parsing_never_raises_it_only_reports(text: str, fmt: str) -> None:
    result = parse_records(text, "csv" if fmt == "csv" else "jsonl", producer_id=PRODUCER)
    assert all(isinstance(d, Draft) for d in result.drafts)
    assert all(isinstance(e, InputError) and e.line is not None for e in result.errors)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.fixed_dictionaries(
            {"shipment_id": ids, "mass": st.sampled_from(["1 kg", "2 lb", "", "3 t"])}
        ),
        min_size=1,
        max_size=15,
    )
)
def test_every_line_is_either_a_draft_or_an_error(lines: list[dict[str, str]]) -> None:
    result = parse_jsonl(*(SHIPPED | line for line in lines))
    good = {d.line for d in result.drafts}
    bad = set(result.bad_lines)
    assert good | bad == set(range(1, len(lines) + 1))
    assert not good & bad
