"""Avro schemas, fingerprints and the single-object encoding (DESIGN.md section 4).

The signed payload of every event, and the Envelope around it, are Avro *single-object
encoded* (Avro specification, "Single-object encoding")::

    C3 01 | fingerprint: 8 bytes, little-endian | Avro binary body

The fingerprint is the CRC-64-AVRO (Rabin) fingerprint of the writer schema's Parsing
Canonical Form (Avro specification, "Schema Fingerprints" and "Parsing Canonical Form for
Schemas"). A reader looks the writer schema up by fingerprint and reads the body with the
*current* schema of the same full name (Avro "Schema Resolution"), so old events are read by
new code.

Where the schemas come from (:meth:`SchemaRegistry.from_directories`):

- the current schemas are the ``*.avsc`` files of one directory (``schemas/`` itself), one
  named type per file; a file may refer to a type of another file by its full name. Each record
  that no other file refers to (the events and the Envelope) becomes a standalone schema, the
  named types it uses inlined at their first use, and is registered under its fingerprint.
- every older set of schemas is frozen, unchanged, in a directory of ``schemas/history/`` (see
  its README) and loaded the same way; its records are registered as *writer* schemas only.

Every failure on bytes is an :class:`~ledger.errors.EncodingError`; fastavro's exceptions never
escape (this module is the edge where they are translated).
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Any

import fastavro
import fastavro.schema

from ledger.errors import EncodingError, InputError, Reason
from schemas.events import EVENT_TYPES, Envelope, Event, event_from_avro, from_avro, to_avro

MAGIC = b"\xc3\x01"
"""The two marker bytes that start an Avro single-object encoding (format version 1)."""
HEADER_SIZE = len(MAGIC) + 8
"""Marker plus the 8-byte fingerprint: where the Avro binary body starts."""

_CRC64_EMPTY = 0xC15D213AA4D7A795
"""CRC-64-AVRO of the empty string; also the polynomial (Avro spec, "Schema Fingerprints")."""


def _crc64_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_TABLE = _crc64_table()
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})


def crc64_avro(data: bytes) -> int:
    """The 64-bit Rabin fingerprint of ``data`` as the Avro specification defines it.

    Transcribed from the reference code of Avro spec "Schema Fingerprints". Returned as an
    unsigned integer; Java's ``SchemaNormalization.parsingFingerprint64`` returns the same
    bits as a signed ``long``.
    """
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def parsing_canonical_form(schema: str | list[Any] | dict[str, Any]) -> str:
    """The Parsing Canonical Form of a JSON schema (Avro spec, "Parsing Canonical Form").

    Raises:
        EncodingError(UNKNOWN_SCHEMA): not a valid Avro schema.
    """
    try:
        return str(fastavro.schema.to_parsing_canonical_form(schema))
    except Exception as exc:
        raise EncodingError(Reason.UNKNOWN_SCHEMA, f"not a valid Avro schema: {exc}") from exc


def single_object_header(fingerprint: int) -> bytes:
    """``C3 01`` followed by the fingerprint, 8 bytes little-endian."""
    return MAGIC + fingerprint.to_bytes(8, "little")


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """One standalone record schema and its fingerprint."""

    name: str
    """Full name, e.g. ``org.cehub.v1.BatchCreated``."""
    fingerprint: int
    """CRC-64-AVRO of :attr:`canonical_form`, unsigned."""
    canonical_form: str
    schema: Mapping[str, Any] = field(repr=False)
    """The standalone JSON schema (named types inlined at first use)."""
    parsed: Any = field(repr=False, compare=False)
    """fastavro's parsed form of :attr:`schema`."""

    @property
    def header(self) -> bytes:
        """The 10 bytes that start every single-object encoding written with this schema."""
        return single_object_header(self.fingerprint)


@dataclass(frozen=True, slots=True)
class SchemaRegistry:
    """Current reader schemas by full name, and every known writer schema by fingerprint."""

    current: Mapping[str, RegisteredSchema]
    writers: Mapping[int, RegisteredSchema]

    @classmethod
    def from_directories(
        cls, current: Traversable, history: Iterable[Traversable] = ()
    ) -> SchemaRegistry:
        """Load the current schemas from ``current`` and frozen older sets from ``history``.

        Raises:
            EncodingError(UNKNOWN_SCHEMA): a schema file is not valid Avro, or two files
                define the same name.
        """
        now = _load_directory(current)
        writers = {schema.fingerprint: schema for schema in now}
        for directory in history:
            for schema in _load_directory(directory):
                writers.setdefault(schema.fingerprint, schema)
        return cls(
            current=MappingProxyType({schema.name: schema for schema in now}),
            writers=MappingProxyType(writers),
        )

    def schema(self, name: str) -> RegisteredSchema:
        """The current schema of full name ``name``.

        Raises:
            EncodingError(UNKNOWN_SCHEMA): no current schema has that name.
        """
        try:
            return self.current[name]
        except KeyError:
            raise EncodingError(Reason.UNKNOWN_SCHEMA, f"no current schema {name!r}") from None

    def encode(self, name: str, datum: Mapping[str, Any]) -> bytes:
        """Single-object encoding of ``datum`` with the current schema ``name``.

        Raises:
            EncodingError(UNKNOWN_SCHEMA): no current schema has that name.
            InputError(INVALID_FIELD): the datum does not fit the schema.
        """
        schema = self.schema(name)
        out = io.BytesIO()
        out.write(schema.header)
        try:
            fastavro.schemaless_writer(
                out, schema.parsed, datum, strict=True, strict_allow_default=True
            )
        except Exception as exc:
            raise InputError(
                Reason.INVALID_FIELD, f"datum does not fit schema {name}: {exc}"
            ) from exc
        return out.getvalue()

    def writer_of(self, data: bytes) -> RegisteredSchema:
        """The writer schema named by the fingerprint of a single-object encoding.

        Raises:
            EncodingError(UNDECODABLE_PAYLOAD): not a single-object encoding.
            EncodingError(UNKNOWN_SCHEMA): the fingerprint is not a known writer schema.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise EncodingError(
                Reason.UNDECODABLE_PAYLOAD, f"expected bytes, got {type(data).__name__}"
            )
        if len(data) < HEADER_SIZE or bytes(data[:2]) != MAGIC:
            raise EncodingError(
                Reason.UNDECODABLE_PAYLOAD,
                "not an Avro single-object encoding (no C3 01 marker and 8-byte fingerprint)",
            )
        fingerprint = int.from_bytes(data[2:HEADER_SIZE], "little")
        try:
            return self.writers[fingerprint]
        except KeyError:
            raise EncodingError(
                Reason.UNKNOWN_SCHEMA, f"unknown writer schema fingerprint {fingerprint:016x}"
            ) from None

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Read a single-object encoding: (full name, datum read with the current schema).

        Raises:
            EncodingError(UNDECODABLE_PAYLOAD): bad marker, a body that does not decode or
                does not resolve against the current schema, or trailing bytes.
            EncodingError(UNKNOWN_SCHEMA): unknown fingerprint, or no current schema of the
                writer's name.
        """
        writer = self.writer_of(data)
        reader = self.current.get(writer.name)
        if reader is None:
            raise EncodingError(
                Reason.UNKNOWN_SCHEMA, f"no current schema to read {writer.name} with"
            )
        stream = io.BytesIO(data)
        stream.seek(HEADER_SIZE)
        try:
            datum = fastavro.schemaless_reader(
                stream, writer.parsed, None if reader is writer else reader.parsed
            )
        except Exception as exc:
            raise EncodingError(
                Reason.UNDECODABLE_PAYLOAD, f"{writer.name} body does not decode: {exc!r}"
            ) from exc
        if stream.tell() != len(data):
            raise EncodingError(
                Reason.UNDECODABLE_PAYLOAD,
                f"{len(data) - stream.tell()} trailing bytes after the {writer.name} body",
            )
        if not isinstance(datum, dict):
            raise EncodingError(Reason.UNDECODABLE_PAYLOAD, f"{writer.name} is not a record")
        return reader.name, datum


@functools.cache
def default_registry() -> SchemaRegistry:
    """The schemas shipped in this package: ``schemas/*.avsc`` and ``schemas/history/*/``."""
    package = importlib.resources.files("schemas")
    history_root = package / "history"
    history = (
        sorted((d for d in history_root.iterdir() if d.is_dir()), key=lambda d: d.name)
        if history_root.is_dir()
        else []
    )
    return SchemaRegistry.from_directories(package, history)


def encode_event(event: Event, registry: SchemaRegistry | None = None) -> bytes:
    """The single-object encoding of ``event``: the exact bytes a producer signs.

    Raises:
        EncodingError(UNKNOWN_SCHEMA): the registry has no schema for this event type.
    """
    return (registry or default_registry()).encode(event.AVRO_NAME, to_avro(event))


def decode_event(data: bytes, registry: SchemaRegistry | None = None) -> Event:
    """The event in a single-object encoding, read with the current schema.

    Raises:
        EncodingError(UNKNOWN_SCHEMA): unknown writer schema.
        EncodingError(UNDECODABLE_PAYLOAD): anything else wrong with the bytes, including a
            known schema that is not an event. Never any other exception.
    """
    if registry is None and type(data) is bytes:
        return _decode_default_event(data)
    return _decode_event(data, registry or default_registry())


def _decode_event(data: bytes, registry: SchemaRegistry) -> Event:
    name, datum = registry.decode(data)
    if name not in EVENT_TYPES:
        raise EncodingError(Reason.UNDECODABLE_PAYLOAD, f"{name} is not an event")
    try:
        return event_from_avro(name, datum)
    except Exception as exc:
        raise EncodingError(Reason.UNDECODABLE_PAYLOAD, f"{name}: {exc}") from exc


DECODED_CACHE_SIZE = 4096
"""Envelopes and events kept decoded, by their exact bytes (default registry only).

A hub worker decodes each envelope in its verify stage and again in its sequencer, which
also reads the ids of a whole batch before deciding it (docs/performance.md). Decoding is a
pure function of the bytes and the records are immutable, so a repeat is answered from here;
signatures are still checked on every call of :func:`ledger.envelope.open_envelope`. Bytes
that fail to decode are not cached (they raise again)."""


@functools.lru_cache(maxsize=DECODED_CACHE_SIZE)
def _decode_default_event(data: bytes) -> Event:
    return _decode_event(data, default_registry())


def encode_envelope(envelope: Envelope, registry: SchemaRegistry | None = None) -> bytes:
    """The single-object encoding of an Envelope record (what goes on Kafka)."""
    return (registry or default_registry()).encode(Envelope.AVRO_NAME, to_avro(envelope))


def decode_envelope(data: bytes, registry: SchemaRegistry | None = None) -> Envelope:
    """The Envelope record in a single-object encoding.

    Raises:
        EncodingError(UNKNOWN_SCHEMA): unknown writer schema fingerprint.
        EncodingError(MALFORMED_ENVELOPE): anything else. Never any other exception.
    """
    if registry is None and type(data) is bytes:
        return _decode_default_envelope(data)
    return _decode_envelope(data, registry or default_registry())


@functools.lru_cache(maxsize=DECODED_CACHE_SIZE)
def _decode_default_envelope(data: bytes) -> Envelope:
    return _decode_envelope(data, default_registry())


def _decode_envelope(data: bytes, registry: SchemaRegistry) -> Envelope:
    try:
        name, datum = registry.decode(data)
    except EncodingError as exc:
        if exc.reason is Reason.UNKNOWN_SCHEMA:
            raise
        raise EncodingError(Reason.MALFORMED_ENVELOPE, exc.message) from exc
    if name != Envelope.AVRO_NAME:
        raise EncodingError(Reason.MALFORMED_ENVELOPE, f"{name} is not an Envelope")
    try:
        return from_avro(Envelope, datum)
    except Exception as exc:
        raise EncodingError(Reason.MALFORMED_ENVELOPE, f"Envelope: {exc}") from exc


# --- loading schema files ---------------------------------------------------------------------


def _load_directory(directory: Traversable) -> list[RegisteredSchema]:
    """Standalone schemas of the records of ``directory`` that no other file refers to."""
    definitions: dict[str, dict[str, Any]] = {}
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".avsc") and entry.is_file():
            definition = _read_definition(entry)
            name = _full_name(definition, "")
            if name in definitions:
                raise EncodingError(Reason.UNKNOWN_SCHEMA, f"{entry.name}: {name} is defined twice")
            definitions[name] = definition
    standalone: dict[str, dict[str, Any]] = {}
    referenced: set[str] = set()
    for name, definition in definitions.items():
        seen: set[str] = set()
        try:
            standalone[name] = _inline(definition, "", definitions, seen)
        except (KeyError, TypeError, AttributeError) as exc:
            raise EncodingError(Reason.UNKNOWN_SCHEMA, f"{name}: malformed ({exc!r})") from exc
        referenced |= seen - {name}
    return [
        _register(name, schema)
        for name, schema in standalone.items()
        if name not in referenced and schema["type"] in ("record", "error")
    ]


def _read_definition(entry: Traversable) -> dict[str, Any]:
    try:
        definition = json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EncodingError(Reason.UNKNOWN_SCHEMA, f"{entry.name}: {exc}") from exc
    if not (isinstance(definition, dict) and definition.get("type") in _NAMED):
        raise EncodingError(
            Reason.UNKNOWN_SCHEMA, f"{entry.name}: not a named type (record, enum or fixed)"
        )
    return definition


def _full_name(definition: Mapping[str, Any], namespace: str) -> str:
    name = definition.get("name")
    if not isinstance(name, str) or not name:
        raise EncodingError(Reason.UNKNOWN_SCHEMA, f"named type without a name: {definition}")
    if "." in name:
        return name
    own = definition.get("namespace", namespace)
    return f"{own}.{name}" if own else name


def _inline(node: Any, namespace: str, definitions: Mapping[str, Any], seen: set[str]) -> Any:
    """Copy of ``node`` with references to other files' types replaced by their definition
    at first use (later uses keep the full name), as a standalone Avro schema must be.
    ``seen`` collects the full names of the named types used."""
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return node
        full = node if "." in node or not namespace else f"{namespace}.{node}"
        if full in seen:
            return full
        if full not in definitions:
            raise EncodingError(Reason.UNKNOWN_SCHEMA, f"unknown named type {full!r}")
        return _inline(definitions[full], "", definitions, seen)  # a file's own context
    if isinstance(node, list):
        return [_inline(branch, namespace, definitions, seen) for branch in node]
    if not isinstance(node, dict) or "type" not in node:
        raise EncodingError(Reason.UNKNOWN_SCHEMA, f"not an Avro schema: {node!r}")
    out = dict(node)
    kind = node["type"]
    if kind in _NAMED:
        full = _full_name(node, namespace)
        seen.add(full)
        own_namespace, _, short = full.rpartition(".")
        out["name"], out["namespace"] = short, own_namespace
        if kind in ("record", "error"):
            out["fields"] = [
                {**f, "type": _inline(f["type"], own_namespace, definitions, seen)}
                for f in node["fields"]
            ]
    elif kind == "array":
        out["items"] = _inline(node["items"], namespace, definitions, seen)
    elif kind == "map":
        out["values"] = _inline(node["values"], namespace, definitions, seen)
    else:
        out["type"] = _inline(kind, namespace, definitions, seen)
    return out


def _register(name: str, schema: dict[str, Any]) -> RegisteredSchema:
    canonical = parsing_canonical_form(schema)
    try:
        parsed = fastavro.parse_schema(schema, named_schemas={})
    except Exception as exc:
        raise EncodingError(Reason.UNKNOWN_SCHEMA, f"{name}: {exc}") from exc
    return RegisteredSchema(
        name=name,
        fingerprint=crc64_avro(canonical.encode("utf-8")),
        canonical_form=canonical,
        schema=MappingProxyType(schema),
        parsed=parsed,
    )
