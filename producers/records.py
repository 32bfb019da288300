"""An emitter's input files, JSON Lines or CSV, parsed into events that await their sequence number.

Pure: no Kafka, no clock, no file system. The formats are specified in ``docs/emit-formats.md``
(every field, the CSV column layout per event type, examples under ``docs/examples/``):

- **JSON Lines**: one object per line; ``composition`` is a nested object, ``inputs`` and
  ``outputs`` are arrays of objects (or the compact text form below).
- **CSV**: a header row; one column per field, nested fields flattened with a dot
  (``composition.pre_consumer``), ``inputs`` and ``outputs`` in a compact text form,
  ``acme/b1=1200 kg; acme/b2=300 kg`` and ``acme/p1=1400 kg, material=PET_PELLET``.

Masses are text with a unit (``"1250.5 kg"``, ``"3 t"``, ``"900 g"``) read exactly by
:func:`schemas.quantities.parse_mass`; times are ISO 8601 with a UTC offset
(:func:`schemas.quantities.parse_timestamp`); material codes must be in the material list.

This module turns a file into rows of ``{field: value}`` and rows into drafts;
``producers/fields.py`` reads the fields of one row. Every bad field of every line becomes an
:class:`~ledger.errors.InputError` naming the line and the field; :func:`parse_records`
collects all of them, so one run shows every problem of a file. A valid line becomes a
:class:`Draft`: the event with everything but its producer sequence number, which the emitter
assigns from its state file (``producers/state.py``).

Event ids (DESIGN.md section 4: a repeated event id is a duplicate the hub skips): a line
without ``event_id`` gets a UUIDv5 (RFC 9562 section 5.5) in :data:`EVENT_ID_NAMESPACE` over
the producer id, the event type and the canonical JSON of the event's content. Re-emitting the
same file after a crash therefore produces the same events, and equivalent CSV and JSON Lines
lines produce the same id.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Literal

from ledger.errors import InputError, Reason
from producers.fields import COMMON_FIELDS, FIELDS, NIL_EVENT_ID, json_kind, read_event
from schemas.events import Event, EventHeader, to_avro
from schemas.materials import MaterialList, default_materials

Format = Literal["jsonl", "csv"]

EVENT_ID_NAMESPACE = uuid.UUID("f45b7c59-6c4e-415d-b0a6-7ca1e2e580ff")
"""UUIDv5 namespace of derived event ids. Fixed forever: changing it changes every derived id."""

FILE_SUFFIXES: Mapping[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}

__all__ = [
    "COMMON_FIELDS",
    "CSV_COLUMNS",
    "EVENT_ID_NAMESPACE",
    "FIELDS",
    "Draft",
    "Format",
    "ParseResult",
    "command_draft",
    "derive_event_id",
    "format_of",
    "parse_records",
]

CSV_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(COMMON_FIELDS + tuple(f for fields in FIELDS.values() for f in fields))
)
"""Every column a CSV header may name (any subset, in any order; ``type`` is required)."""


@dataclass(frozen=True, slots=True)
class Draft:
    """One valid input line: its event, whose ``header.producer_seq`` is still a placeholder."""

    line: int
    event: Event

    @property
    def event_id(self) -> str:
        return self.event.header.event_id

    def sequenced(self, producer_seq: int) -> Event:
        """The event with its producer sequence number (the bytes that get signed)."""
        header = dataclasses.replace(self.event.header, producer_seq=producer_seq)
        return dataclasses.replace(self.event, header=header)


@dataclass(frozen=True, slots=True)
class ParseResult:
    """The outcome of parsing one file: the valid lines and every error of the others."""

    drafts: tuple[Draft, ...]
    errors: tuple[InputError, ...]
    lines: int
    """Records read (non-blank lines; the CSV header row not counted)."""

    @property
    def bad_lines(self) -> tuple[int, ...]:
        """Line numbers with at least one error, ascending (0: the file as a whole)."""
        return tuple(sorted({e.line or 0 for e in self.errors}))


def format_of(path: PurePath) -> Format:
    """The input format named by a file's extension (``.jsonl``/``.ndjson`` or ``.csv``).

    Raises:
        InputError(INVALID_FIELD): another extension; pass the format explicitly.
    """
    fmt = FILE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            Reason.INVALID_FIELD,
            f"cannot tell the format of {path.name!r} from its extension; "
            f"use one of {', '.join(FILE_SUFFIXES)} or name the format (jsonl or csv)",
        )
    return fmt


def parse_records(
    text: str, fmt: Format, *, producer_id: str, materials: MaterialList | None = None
) -> ParseResult:
    """Parse a whole input file (its decoded text) into drafts and errors.

    Never raises for bad input: every problem is in :attr:`ParseResult.errors`, ordered by
    line. A line whose content repeats an earlier line's (same event id) is an error too,
    because one file would otherwise spend two sequence numbers on one event.
    """
    catalogue = materials if materials is not None else default_materials()
    errors, rows = _jsonl_rows(text) if fmt == "jsonl" else _csv_rows(text)
    drafts: list[Draft] = []
    first_line_of: dict[str, int] = {}
    count = 0
    for row in rows:
        count += 1
        if isinstance(row, InputError):
            errors.append(row)
            continue
        draft, line_errors = _parse_row(row, producer_id, catalogue)
        errors.extend(line_errors)
        if draft is None:
            continue
        earlier = first_line_of.setdefault(draft.event_id, draft.line)
        if earlier != draft.line:
            errors.append(
                InputError(
                    Reason.DUPLICATE_EVENT,
                    f"the same event as line {earlier} (event id {draft.event_id})",
                    line=draft.line,
                    field="event_id",
                )
            )
            continue
        drafts.append(draft)
    errors.sort(key=lambda e: e.line or 0)
    return ParseResult(tuple(drafts), tuple(errors), count)


def command_draft(
    build: Callable[[EventHeader], Event], *, producer_id: str, occurred_at: datetime
) -> Draft:
    """The draft of an event a command makes (enroll, keys rotate / revoke): ``build`` gets
    the header; the event id is derived from the content as for a file line (line 0).

    Raises:
        InputError: a field of the wrong form.
    """
    event = build(EventHeader(NIL_EVENT_ID, producer_id, 0, occurred_at))
    return Draft(0, _with_event_id(event, derive_event_id(event)))


def derive_event_id(event: Event) -> str:
    """The UUIDv5 of ``event``'s producer, type and content (everything but the event id and
    the producer sequence number), as canonical JSON."""
    datum = to_avro(event)
    header = dict(datum["header"])
    del header["event_id"], header["producer_seq"]
    content = {**datum, "header": header}
    name = json.dumps(
        {"type": type(event).__name__, "content": content},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_canonical_scalar,
    )
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


def _canonical_scalar(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Decimal):
        return f"{value:f}"
    raise TypeError(f"no canonical form for {type(value).__name__}")  # pragma: no cover


# --- rows: the two file formats reduced to {field: value} -------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    values: Mapping[str, object]


_Rows = tuple[list[InputError], Iterator[_Row | InputError]]
"""Errors of the file as a whole (a CSV header), then one row or one error per record."""


def _jsonl_rows(text: str) -> _Rows:
    return [], _jsonl_records(text)


def _jsonl_records(text: str) -> Iterator[_Row | InputError]:
    # Split on LF only: JSON strings may hold U+2028 and other characters str.splitlines cuts.
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw, object_pairs_hook=_no_duplicate_keys)
        except ValueError as exc:
            yield InputError(Reason.INVALID_FIELD, f"not valid JSON: {exc}", line=number)
            continue
        if not isinstance(obj, dict):
            yield InputError(
                Reason.INVALID_FIELD,
                f"expected a JSON object, got {json_kind(obj)}",
                line=number,
            )
            continue
        yield _Row(number, dict(_flatten(obj)))


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _value in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"repeated key(s) {', '.join(map(repr, repeated))}")
    return dict(pairs)


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, object]]:
    """Nested objects as dotted keys: ``{"composition": {"virgin": ..}}`` gives
    ``composition.virgin``."""
    for key, value in obj.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _csv_rows(text: str) -> _Rows:
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return [InputError(Reason.INVALID_FIELD, f"unreadable CSV header: {exc}", line=1)], iter(())
    if header is None:
        return [], iter(())
    columns = [name.strip() for name in header]
    problems = _header_problems(columns)
    if "type" not in columns:
        return problems, iter(())
    return problems, _csv_records(reader, columns)


def _csv_records(reader: Any, columns: list[str]) -> Iterator[_Row | InputError]:
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield InputError(Reason.INVALID_FIELD, f"unreadable CSV: {exc}", line=line)
        else:
            if any(cell.strip() for cell in cells):
                yield _csv_row(line, columns, cells)
        line = reader.line_num + 1


def _header_problems(columns: list[str]) -> list[InputError]:
    problems = []
    if "type" not in columns:
        problems.append(
            InputError(
                Reason.MISSING_FIELD, "the header has no 'type' column", line=1, field="type"
            )
        )
    for index, name in enumerate(columns):
        if name not in CSV_COLUMNS:
            problems.append(
                InputError(
                    Reason.INVALID_FIELD,
                    f"unknown column {name!r} (column {index + 1}); docs/emit-formats.md lists "
                    "the columns",
                    line=1,
                    field=name,
                )
            )
        elif columns.index(name) != index:
            problems.append(
                InputError(Reason.INVALID_FIELD, f"column {name!r} repeated", line=1, field=name)
            )
    return problems


def _csv_row(line: int, columns: list[str], cells: list[str]) -> _Row | InputError:
    if len(cells) > len(columns):
        return InputError(
            Reason.INVALID_FIELD,
            f"{len(cells)} cells but the header has {len(columns)} columns",
            line=line,
        )
    values = {
        name: cell.strip()
        for name, cell in zip(columns, cells, strict=False)
        if cell.strip() and name in CSV_COLUMNS
    }
    return _Row(line, values)


# --- one row into one event --------------------------------------------------------------------


def _parse_row(
    row: _Row, producer_id: str, materials: MaterialList
) -> tuple[Draft | None, list[InputError]]:
    event, errors = read_event(row.line, row.values, producer_id=producer_id, materials=materials)
    if event is None:
        return None, errors
    if event.header.event_id == NIL_EVENT_ID:
        event = _with_event_id(event, derive_event_id(event))
    return Draft(row.line, event), []


def _with_event_id(event: Event, event_id: str) -> Event:
    return dataclasses.replace(event, header=dataclasses.replace(event.header, event_id=event_id))
