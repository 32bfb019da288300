"""Avro schemas, fingerprints, single-object encoding and event records (schemas/)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import json
import shutil
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro.schema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import EncodingError, InputError, Reason
from schemas import events as ev
from schemas.codec import (
    HEADER_SIZE,
    MAGIC,
    SchemaRegistry,
    crc64_avro,
    decode_envelope,
    decode_event,
    default_registry,
    encode_envelope,
    encode_event,
    parsing_canonical_form,
    single_object_header,
)
from tests.strategies import batch_created, events

VECTORS = Path(__file__).parents[1] / "vectors"
TEST_SCHEMAS = Path(__file__).parents[1] / "schemas"
PACKAGE_SCHEMAS = Path(str(importlib.resources.files("schemas")))
FAST = settings(max_examples=60, deadline=None)

PUBLISHED_FINGERPRINTS = {
    "org.cehub.v1.BatchCreated": 0x1EAB16DB3D47EF11,
    "org.cehub.v1.BatchReceived": 0x29B1E9E558658EB0,
    "org.cehub.v1.BatchShipped": 0x7A7D8E42D0C47E98,
    "org.cehub.v1.BatchTransformed": 0x1EA2501A4B646F6E,
    "org.cehub.v1.CertificateIssued": 0x728B6DD1892DC7A2,
    "org.cehub.v1.CertificateRevoked": 0xCE197F3A2FA9C6CD,
    "org.cehub.v1.Envelope": 0x7E31BE75B176F0C8,
    "org.cehub.v1.KeyRevoked": 0x1577FF110A1BC631,
    "org.cehub.v1.KeyRotated": 0xF83BD341F7487C69,
    "org.cehub.v1.ParticipantEnrolled": 0xF298C11F7CBF4962,
}
"""Fingerprints of every schema version released. Append, never remove: each must stay
readable. If a test below fails because a current fingerprint is missing here, a schema
changed: freeze the previous set into schemas/history/<version>/ (see its README), then add
the new fingerprint."""


def _header(seq: int = 0, producer: str = "acme") -> ev.EventHeader:
    return ev.EventHeader(
        event_id="5f0c6f1e-8d7b-4c1e-9a59-2f1c3b4d5e6f",
        producer_id=producer,
        producer_seq=seq,
        occurred_at=datetime(2025, 3, 1, 1, 30, tzinfo=UTC),
    )


def _batch() -> ev.BatchCreated:
    return ev.BatchCreated(
        header=_header(),
        batch_id="acme/b-1",
        owner_id="acme",
        site_id="rayong-1",
        material="PET_FLAKE",
        mass_g=1_250_500,
        composition=ev.Composition(virgin_g=250_500, pre_consumer_g=0, post_consumer_g=1_000_000),
    )


# --- CRC-64-AVRO and Parsing Canonical Form: Apache Avro's published vectors -------------------


def _avro_vectors() -> list[dict[str, Any]]:
    data = json.loads((VECTORS / "avro-fingerprint" / "schema-tests.json").read_text())
    vectors: list[dict[str, Any]] = data["vectors"]
    return vectors


@pytest.mark.parametrize(
    "vector", [v for v in _avro_vectors() if v["fingerprint"] is not None], ids=lambda v: v["id"]
)
def test_crc64_avro_matches_apache_avro_schema_tests(vector: dict[str, Any]) -> None:
    signed = vector["fingerprint"]  # Java's signed long; the same 64 bits
    assert crc64_avro(vector["canonical"].encode()) == signed % 2**64


@pytest.mark.parametrize(
    # 026 gives a boolean the string default "true", which fastavro rightly rejects (README).
    "vector",
    [v for v in _avro_vectors() if v["id"] != "026"],
    ids=lambda v: v["id"],
)
def test_parsing_canonical_form_matches_apache_avro_schema_tests(vector: dict[str, Any]) -> None:
    assert parsing_canonical_form(json.loads(vector["input"])) == vector["canonical"]


def test_single_object_header_of_int_matches_avro_ruby_test() -> None:
    # lang/ruby/test/test_fingerprints.rb, test_single_object_encoding_header
    expected = bytes.fromhex("c3018f5c393f1ad57572")
    assert single_object_header(crc64_avro(b'"int"')) == expected


def test_crc64_of_empty_input_is_the_spec_constant() -> None:
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


def test_fingerprints_agree_with_fastavro() -> None:
    for schema in default_registry().current.values():
        fastavro_hex = fastavro.schema.fingerprint(schema.canonical_form, "CRC-64-AVRO")
        assert schema.header[2:].hex() == fastavro_hex


# --- the shipped schemas ------------------------------------------------------------------------


def _schema_files() -> list[Path]:
    return sorted(PACKAGE_SCHEMAS.glob("*.avsc"))


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.name)
def test_schema_file_is_documented_in_the_v1_namespace(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema["namespace"] == "org.cehub.v1"
    assert schema["name"] == path.stem
    assert schema.get("doc")
    for field in schema.get("fields", []):
        assert field.get("doc"), f"{path.name}: field {field['name']} has no doc"


def test_registry_holds_every_event_and_the_envelope() -> None:
    current = default_registry().current
    assert set(current) == {*ev.EVENT_TYPES, ev.Envelope.AVRO_NAME}


def test_every_current_fingerprint_is_published() -> None:
    current = {name: s.fingerprint for name, s in default_registry().current.items()}
    assert current == {name: PUBLISHED_FINGERPRINTS[name] for name in current}


def test_every_published_fingerprint_stays_readable() -> None:
    writers = default_registry().writers
    for name, fingerprint in PUBLISHED_FINGERPRINTS.items():
        assert writers[fingerprint].name == name


def _avro_record_fields(schema: Any, name: str) -> list[str] | None:
    """Field names of the record ``name`` defined somewhere inside ``schema``."""
    if isinstance(schema, list):
        found = [_avro_record_fields(branch, name) for branch in schema]
        return next((f for f in found if f is not None), None)
    if not isinstance(schema, Mapping):
        return None
    if schema.get("type") == "record":
        if f"{schema['namespace']}.{schema['name']}" == name:
            return [field["name"] for field in schema["fields"]]
        for field in schema["fields"]:
            found_fields = _avro_record_fields(field["type"], name)
            if found_fields is not None:
                return found_fields
        return None
    for key in ("items", "values", "type"):
        if key in schema and schema[key] is not schema:
            found_fields = _avro_record_fields(schema[key], name)
            if found_fields is not None:
                return found_fields
    return None


RECORD_CLASSES = [
    *ev.EVENT_TYPES.values(),
    ev.Envelope,
    ev.EventHeader,
    ev.Site,
    ev.Composition,
    ev.TransformInput,
    ev.TransformOutput,
]


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.__name__)
def test_dataclass_fields_match_the_avro_record_in_order(cls: type) -> None:
    for schema in default_registry().current.values():
        avro_fields = _avro_record_fields(dict(schema.schema), cls.AVRO_NAME)  # type: ignore[attr-defined]
        if avro_fields is not None:
            assert avro_fields == [f.name for f in dataclasses.fields(cls)]
            return
    pytest.fail(f"no schema defines {cls.AVRO_NAME}")  # type: ignore[attr-defined]


# --- round trips --------------------------------------------------------------------------------


@FAST
@given(events())
def test_any_event_round_trips(event: ev.Event) -> None:
    data = encode_event(event)
    assert data[:2] == MAGIC
    assert data[2:HEADER_SIZE] == default_registry().schema(event.AVRO_NAME).header[2:]
    assert decode_event(data) == event


@FAST
@given(events())
def test_encoding_is_deterministic(event: ev.Event) -> None:
    assert encode_event(event) == encode_event(decode_event(encode_event(event)))


def test_envelope_round_trips() -> None:
    envelope = ev.Envelope("t", b"\x00payload", "ed25519:00", bytes(64), "acme", 7)
    assert decode_envelope(encode_envelope(envelope)) == envelope


def test_percentages_round_trip_exactly() -> None:
    issued = ev.CertificateIssued(
        header=_header(),
        certificate_id="c-1",
        batch_id="b-1",
        holder_id="acme",
        mass_g=1000,
        custody_model=ev.CustodyModel.MASS_BALANCE,
        pre_consumer_pct=Decimal("33.33"),
        post_consumer_pct=Decimal("0"),
        period_start=datetime(2025, 1, 1, tzinfo=UTC),
        period_end=datetime(2025, 4, 1, tzinfo=UTC),
        certificate_sha256=bytes(32),
    )
    decoded = decode_event(encode_event(issued))
    assert isinstance(decoded, ev.CertificateIssued)
    assert decoded.pre_consumer_pct == Decimal("33.33")
    assert decoded.post_consumer_pct == 0


# --- decoding hostile bytes ---------------------------------------------------------------------


def _decode_or_typed_error(data: bytes) -> None:
    with contextlib.suppress(EncodingError):
        decode_event(data)


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_encoding_error(data: bytes) -> None:
    _decode_or_typed_error(data)


@FAST
@given(st.sampled_from(sorted(PUBLISHED_FINGERPRINTS.values())), st.binary(max_size=300))
def test_random_body_after_a_known_fingerprint_raises_only_encoding_error(
    fingerprint: int, body: bytes
) -> None:
    _decode_or_typed_error(single_object_header(fingerprint) + body)
    with contextlib.suppress(EncodingError):
        decode_envelope(single_object_header(fingerprint) + body)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(), st.data())
def test_flipped_bit_in_a_payload_decodes_or_raises_encoding_error(
    event: ev.Event, data: st.DataObject
) -> None:
    encoded = bytearray(encode_event(event))
    bit = data.draw(st.integers(min_value=0, max_value=len(encoded) * 8 - 1))
    encoded[bit // 8] ^= 1 << (bit % 8)
    _decode_or_typed_error(bytes(encoded))


def test_rejects_missing_marker() -> None:
    data = encode_event(_batch())
    with pytest.raises(EncodingError) as info:
        decode_event(b"\xc3\x02" + data[2:])
    assert info.value.reason is Reason.UNDECODABLE_PAYLOAD


def test_rejects_unknown_fingerprint() -> None:
    data = encode_event(_batch())
    with pytest.raises(EncodingError) as info:
        decode_event(data[:2] + bytes(8) + data[HEADER_SIZE:])
    assert info.value.reason is Reason.UNKNOWN_SCHEMA


def test_rejects_trailing_bytes() -> None:
    with pytest.raises(EncodingError) as info:
        decode_event(encode_event(_batch()) + b"\x00")
    assert info.value.reason is Reason.UNDECODABLE_PAYLOAD
    assert "trailing" in info.value.message


def test_rejects_truncated_body() -> None:
    with pytest.raises(EncodingError) as info:
        decode_event(encode_event(_batch())[:-1])
    assert info.value.reason is Reason.UNDECODABLE_PAYLOAD


def test_rejects_an_envelope_where_an_event_is_expected() -> None:
    envelope = encode_envelope(ev.Envelope("t", b"", "k", b"", "acme", 0))
    with pytest.raises(EncodingError) as info:
        decode_event(envelope)
    assert info.value.reason is Reason.UNDECODABLE_PAYLOAD


def test_rejects_an_event_where_an_envelope_is_expected() -> None:
    with pytest.raises(EncodingError) as info:
        decode_envelope(encode_event(_batch()))
    assert info.value.reason is Reason.MALFORMED_ENVELOPE


@pytest.mark.parametrize("data", [None, "text", 42, [1, 2]])
def test_rejects_non_bytes_input(data: Any) -> None:
    with pytest.raises(EncodingError):
        decode_event(data)
    with pytest.raises(EncodingError):
        decode_envelope(data)


def test_rejects_invalid_uuid_on_the_wire() -> None:
    registry = default_registry()
    datum = ev.to_avro(_batch())
    datum["header"]["event_id"] = "not-a-uuid"
    data = registry.encode(ev.BatchCreated.AVRO_NAME, datum)  # fastavro does not check
    with pytest.raises(EncodingError) as info:
        decode_event(data)
    assert info.value.reason is Reason.UNDECODABLE_PAYLOAD


def test_uppercase_uuid_from_another_writer_reads_canonical() -> None:
    datum = ev.to_avro(_batch())
    datum["header"]["event_id"] = datum["header"]["event_id"].upper()
    data = default_registry().encode(ev.BatchCreated.AVRO_NAME, datum)
    assert decode_event(data).header.event_id == _batch().header.event_id


def test_registry_encode_rejects_a_datum_that_does_not_fit() -> None:
    with pytest.raises(InputError):
        default_registry().encode(ev.BatchCreated.AVRO_NAME, {"batch_id": 1})


def test_encode_with_a_registry_missing_the_type_is_unknown_schema(tmp_path: Path) -> None:
    registry = SchemaRegistry.from_directories(tmp_path)
    with pytest.raises(EncodingError) as info:
        encode_event(_batch(), registry)
    assert info.value.reason is Reason.UNKNOWN_SCHEMA


# --- schema evolution ---------------------------------------------------------------------------


def test_event_written_with_v1_is_read_by_code_whose_current_schema_is_v2() -> None:
    evolution = TEST_SCHEMAS / "evolution"
    old = SchemaRegistry.from_directories(evolution / "v1")
    data = old.encode(
        "org.cehub.test.Reading",
        {"reading_id": "r-1", "parts": [{"name": "flake", "mass_g": 900}]},
    )
    new = SchemaRegistry.from_directories(evolution / "v2", history=[evolution / "v1"])
    assert new.schema("org.cehub.test.Reading").fingerprint != old.writer_of(data).fingerprint
    name, datum = new.decode(data)
    assert name == "org.cehub.test.Reading"
    assert datum == {
        "reading_id": "r-1",
        "parts": [{"name": "flake", "mass_g": 900, "grade": "UNGRADED"}],
        "tare_g": 0,
    }


def test_v1_event_is_unknown_without_the_history() -> None:
    evolution = TEST_SCHEMAS / "evolution"
    data = SchemaRegistry.from_directories(evolution / "v1").encode(
        "org.cehub.test.Reading", {"reading_id": "r-1", "parts": []}
    )
    with pytest.raises(EncodingError) as info:
        SchemaRegistry.from_directories(evolution / "v2").decode(data)
    assert info.value.reason is Reason.UNKNOWN_SCHEMA


def test_transformation_from_a_writer_without_claims_reads_as_zero_claims(tmp_path: Path) -> None:
    """A realistic evolution of the shipped schemas: an older TransformOutput without the
    mass-balance claim fields (they have defaults now) is read by the current code."""
    old_dir = tmp_path / "v0"
    shutil.copytree(PACKAGE_SCHEMAS, old_dir, ignore=shutil.ignore_patterns("*.py", "*.json"))
    output_schema = json.loads((old_dir / "TransformOutput.avsc").read_text())
    output_schema["fields"] = [f for f in output_schema["fields"] if "claimed" not in f["name"]]
    (old_dir / "TransformOutput.avsc").write_text(json.dumps(output_schema))
    old = SchemaRegistry.from_directories(old_dir)
    datum = {
        "header": ev.to_avro(_header()),
        "transformation_id": "t-1",
        "site_id": "rayong-1",
        "process": "WASHING",
        "custody_model": "SEGREGATION",
        "inputs": [{"batch_id": "b-1", "mass_g": 1000}],
        "outputs": [{"batch_id": "b-2", "material": "PET_FLAKE", "mass_g": 950}],
    }
    data = old.encode(ev.BatchTransformed.AVRO_NAME, datum)
    current = SchemaRegistry.from_directories(PACKAGE_SCHEMAS, history=[old_dir])
    event = decode_event(data, current)
    assert isinstance(event, ev.BatchTransformed)
    assert event.outputs == (ev.TransformOutput("b-2", "PET_FLAKE", 950, 0, 0),)


def test_duplicate_definition_is_rejected(tmp_path: Path) -> None:
    shutil.copy(TEST_SCHEMAS / "evolution" / "v1" / "Part.avsc", tmp_path / "A.avsc")
    shutil.copy(TEST_SCHEMAS / "evolution" / "v1" / "Part.avsc", tmp_path / "B.avsc")
    with pytest.raises(EncodingError) as info:
        SchemaRegistry.from_directories(tmp_path)
    assert info.value.reason is Reason.UNKNOWN_SCHEMA


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '"int"',
        '{"type": "record", "name": "R", "fields": [{"name": "x", "type": "Missing"}]}',
        '{"type": "record", "name": "R", "fields": [{"name": "x"}]}',
        '{"type": "record", "name": "R", "fields": [{"name": "x", "type": "nonsense.T"}]}',
    ],
)
def test_invalid_schema_file_is_rejected(tmp_path: Path, text: str) -> None:
    (tmp_path / "R.avsc").write_text(text)
    with pytest.raises(EncodingError) as info:
        SchemaRegistry.from_directories(tmp_path)
    assert info.value.reason is Reason.UNKNOWN_SCHEMA


# --- record validation --------------------------------------------------------------------------


def test_rejects_naive_timestamp() -> None:
    with pytest.raises(InputError) as info:
        ev.EventHeader(str(uuid.uuid4()), "acme", 0, datetime(2025, 1, 1))
    assert info.value.reason is Reason.NAIVE_TIMESTAMP
    assert info.value.field == "occurred_at"


def test_normalises_offset_timestamps_to_utc() -> None:
    bangkok = timezone(timedelta(hours=7))
    header = ev.EventHeader(str(uuid.uuid4()), "acme", 0, datetime(2025, 1, 1, 7, tzinfo=bangkok))
    assert header.occurred_at.tzinfo is UTC
    assert header.occurred_at == datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "event_id",
    [
        "not-a-uuid",
        "5F0C6F1E-8D7B-4C1E-9A59-2F1C3B4D5E6F",
        "{5f0c6f1e-8d7b-4c1e-9a59-2f1c3b4d5e6f}",
    ],
)
def test_rejects_non_canonical_event_id(event_id: str) -> None:
    with pytest.raises(InputError) as info:
        ev.EventHeader(event_id, "acme", 0, datetime(2025, 1, 1, tzinfo=UTC))
    assert info.value.field == "event_id"


@pytest.mark.parametrize("mass", [2**63, -(2**63) - 1, True, 1.5, "5"])
def test_rejects_mass_outside_avro_long_or_not_int(mass: Any) -> None:
    with pytest.raises(InputError) as info:
        dataclasses.replace(_batch(), mass_g=mass)
    assert info.value.field == "mass_g"


@pytest.mark.parametrize("pct", ["33.333", "100000", "NaN", "Infinity"])
def test_rejects_percentage_not_exact_at_scale_2(pct: str) -> None:
    with pytest.raises(InputError) as info:
        ev.CertificateIssued(
            header=_header(),
            certificate_id="c",
            batch_id="b",
            holder_id="h",
            mass_g=1,
            custody_model=ev.CustodyModel.SEGREGATION,
            pre_consumer_pct=Decimal(pct),
            post_consumer_pct=Decimal(0),
            period_start=datetime(2025, 1, 1, tzinfo=UTC),
            period_end=datetime(2025, 2, 1, tzinfo=UTC),
            certificate_sha256=bytes(32),
        )
    assert info.value.field == "pre_consumer_pct"


def test_rejects_unencodable_string() -> None:
    with pytest.raises(InputError) as info:
        dataclasses.replace(_batch(), batch_id="\ud800")
    assert info.value.field == "batch_id"


def test_rejects_list_where_tuple_is_required() -> None:
    transformed = ev.BatchTransformed(
        _header(), "t", "s", ev.Process.OTHER, ev.CustodyModel.SEGREGATION, (), ()
    )
    with pytest.raises(InputError) as info:
        dataclasses.replace(transformed, inputs=[ev.TransformInput("b", 1)])  # type: ignore[arg-type]
    assert info.value.field == "inputs"


def test_rejects_plain_string_for_enum() -> None:
    with pytest.raises(InputError):
        ev.BatchTransformed(
            _header(),
            "t",
            "s",
            "WASHING",  # type: ignore[arg-type]
            ev.CustodyModel.SEGREGATION,
            (),
            (),
        )


@FAST
@given(batch_created())
def test_strategy_compositions_sum_to_mass(event: ev.BatchCreated) -> None:
    assert event.composition.total_g == event.mass_g
