"""The SQL store of the ledger (SQLAlchemy 2; SQLite by default, PostgreSQL).

Tables: ``entries`` (the hash chain; leaf data of the Merkle tree), ``merkle_nodes`` (hashes of
complete subtrees, see docs/verifiable-log.md), the projections the rules read (participants,
keys, batches with their parents, shipments, credit accounts, certificates), ``rejections``,
``checkpoints`` and ``consumer_positions``.

Exactly once by construction (STYLE.md lesson 10): one :meth:`LedgerStore.commit` writes a
batch of entries, their Merkle nodes, the projection rows they change, the rejections and the
consumed Kafka position in ONE transaction, under unique constraints on seq, event id and
(producer, producer seq). A redelivered record is below the stored position and skipped; a
crash before the commit loses nothing that was acknowledged, because nothing was.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from ledger.chain import GENESIS_HASH
from ledger.errors import Reason, StoreError
from ledger.merkle import StoredNode, nodes_completed_by_append, root_hash
from ledger.sequencer import Accepted, Entry, Head, Item, Lookups, Waiting
from ledger.sqlstore import consumer_positions, translated_errors
from ledger.state import (
    Batch,
    CertificateRecord,
    CreditAccount,
    KeyRecord,
    KeyStatus,
    MemoryState,
    Parent,
    Participant,
    Shipment,
)
from schemas.events import Composition, CustodyModel, Role, Site

metadata = MetaData()
Hash = LargeBinary(32)

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("description", Text, nullable=False),
)
ledger_info = Table(
    "ledger_info",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
"""Facts about this store, e.g. ``ledger_id``: a random id given at creation. The hub's
Kafka consumer group is named after it, so a fresh store reads its topics from the start."""
entries = Table(
    "entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("producer_id", String(200), nullable=False),
    Column("producer_seq", BigInteger, nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("envelope_sha256", Hash, nullable=False),
    Column("entry_hash", Hash, nullable=False),
    UniqueConstraint("producer_id", "producer_seq", name="uq_entries_producer_seq"),
    UniqueConstraint("producer_id", "event_id", name="uq_entries_producer_event"),
)
merkle_nodes = Table(
    "merkle_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", Hash, nullable=False),
)
participants = Table(
    "participants",
    metadata,
    Column("participant_id", String(200), primary_key=True),
    Column("legal_name", Text, nullable=False),
    Column("country", String(2), nullable=False),
    Column("roles", Text, nullable=False),
    Column("sites", Text, nullable=False),
    Column("enrolled_seq", BigInteger, nullable=False),
)
sites = Table(
    "sites",
    metadata,
    Column("site_id", String(200), primary_key=True),
    Column("participant_id", String(200), nullable=False),
)
"""Which participant a site belongs to (derived from ``participants.sites``; site ids are
unique across participants because mass-balance credit is kept per site)."""
keys = Table(
    "keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("participant_id", String(200), nullable=False, index=True),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("added_seq", BigInteger, nullable=False),
)
batches = Table(
    "batches",
    metadata,
    Column("batch_id", String(200), primary_key=True),
    Column("owner_id", String(200), nullable=False, index=True),
    Column("site_id", String(200), nullable=False),
    Column("material", String(64), nullable=False),
    Column("mass_g", BigInteger, nullable=False),
    Column("remaining_g", BigInteger, nullable=False),
    Column("virgin_g", BigInteger, nullable=False),
    Column("pre_consumer_g", BigInteger, nullable=False),
    Column("post_consumer_g", BigInteger, nullable=False),
    Column("custody_model", String(32), nullable=True),
    Column("created_seq", BigInteger, nullable=False),
)
batch_parents = Table(
    "batch_parents",
    metadata,
    Column("batch_id", String(200), ForeignKey("batches.batch_id"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("parent_id", String(200), nullable=False, index=True),
    Column("mass_g", BigInteger, nullable=False),
)
shipments = Table(
    "shipments",
    metadata,
    Column("shipment_id", String(200), primary_key=True),
    Column("batch_id", String(200), nullable=False, index=True),
    Column("sender_id", String(200), nullable=False),
    Column("receiver_id", String(200), nullable=False),
    Column("receiver_site_id", String(200), nullable=False),
    Column("mass_g", BigInteger, nullable=False),
    Column("shipped_seq", BigInteger, nullable=False),
    Column("received_g", BigInteger, nullable=True),
    Column("received_seq", BigInteger, nullable=True),
)
credit_accounts = Table(
    "credit_accounts",
    metadata,
    Column("site_id", String(200), primary_key=True),
    Column("material_group", String(64), primary_key=True),
    Column("period", String(8), primary_key=True),
    Column("pre_consumer_g", BigInteger, nullable=False),
    Column("post_consumer_g", BigInteger, nullable=False),
)
certificates = Table(
    "certificates",
    metadata,
    Column("certificate_id", String(200), primary_key=True),
    Column("batch_id", String(200), nullable=False, index=True),
    Column("holder_id", String(200), nullable=False),
    Column("certifier_id", String(200), nullable=False),
    Column("certificate_sha256", Hash, nullable=False),
    Column("issued_seq", BigInteger, nullable=False),
    Column("revoked_seq", BigInteger, nullable=True),
)
rejections = Table(
    "rejections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stage", String(32), nullable=False),
    Column("reason", String(64), nullable=False, index=True),
    Column("message", Text, nullable=False),
    Column("source_topic", String(249), nullable=False),
    Column("source_partition", Integer, nullable=False),
    Column("source_offset", BigInteger, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    UniqueConstraint("stage", "source_topic", "source_partition", "source_offset"),
)
waiting_events = Table(
    "waiting_events",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("message", Text, nullable=False),
)
"""Sequencer input waiting for a dependency (ledger/sequencer.py ``DEFERRABLE``)."""
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", Hash, nullable=False),
    Column("note", Text, nullable=False),
)

PROJECTION_TABLES = (
    participants,
    sites,
    keys,
    batches,
    batch_parents,
    shipments,
    credit_accounts,
    certificates,
)


# --- migrations -------------------------------------------------------------------------------


def _migration_1(conn: Connection) -> None:
    for table in (
        ledger_info,
        entries,
        merkle_nodes,
        *PROJECTION_TABLES,
        rejections,
        waiting_events,
        checkpoints,
    ):
        table.create(conn, checkfirst=True)
    consumer_positions.create(conn, checkfirst=True)
    conn.execute(insert(ledger_info).values(name="ledger_id", value=str(uuid.uuid4())))


MIGRATIONS: tuple[tuple[int, str, Callable[[Connection], None]], ...] = (
    (1, "entries, Merkle nodes, projections, rejections, checkpoints, positions", _migration_1),
)
"""Numbered schema changes, applied in order once each. Append; never edit a released one."""


def migrate(engine: Engine) -> int:
    """Bring the database schema up to date; return its version."""
    with translated_errors("migrating the ledger schema"), engine.begin() as conn:
        schema_version.create(conn, checkfirst=True)
        current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
        for version, description, step in MIGRATIONS:
            if version > current:
                step(conn)
                conn.execute(
                    insert(schema_version).values(version=version, description=description)
                )
                current = version
    return current


# --- reading ----------------------------------------------------------------------------------


def _by(table: Table, *names: str) -> Select[Any]:
    """A prebuilt ``SELECT * FROM table WHERE name = :name ...``: building statements per call
    costs more than running them (SQLAlchemy compiles once and caches by statement)."""
    return select(table).where(*(table.c[n] == bindparam(n) for n in names))


_Q_PARTICIPANT = _by(participants, "participant_id")
_Q_KEY = _by(keys, "key_id")
_Q_SITE = _by(sites, "site_id")
_Q_BATCH = _by(batches, "batch_id")
_Q_PARENTS = (
    select(batch_parents.c.parent_id, batch_parents.c.mass_g)
    .where(batch_parents.c.batch_id == bindparam("batch_id"))
    .order_by(batch_parents.c.position)
)
_Q_SHIPMENT = _by(shipments, "shipment_id")
_Q_CREDIT = _by(credit_accounts, "site_id", "material_group", "period")
_Q_CERTIFICATE = _by(certificates, "certificate_id")
_Q_SEQ_OF_EVENT = select(entries.c.seq).where(
    entries.c.producer_id == bindparam("producer_id"), entries.c.event_id == bindparam("event_id")
)
_Q_EVENT_OF_PRODUCER_SEQ = select(entries.c.event_id).where(
    entries.c.producer_id == bindparam("producer_id"),
    entries.c.producer_seq == bindparam("producer_seq"),
)

_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_Q_BATCHES_IN = select(batches).where(batches.c.batch_id.in_(_IDS))
_Q_PARENTS_IN = (
    select(batch_parents.c.batch_id, batch_parents.c.parent_id, batch_parents.c.mass_g)
    .where(batch_parents.c.batch_id.in_(_IDS))
    .order_by(batch_parents.c.batch_id, batch_parents.c.position)
)
_Q_SHIPMENTS_IN = select(shipments).where(shipments.c.shipment_id.in_(_IDS))
_Q_EVENTS_IN = select(entries.c.seq, entries.c.event_id).where(
    entries.c.producer_id == bindparam("producer_id"), entries.c.event_id.in_(_IDS)
)
_Q_PRODUCER_SEQS_IN = select(entries.c.event_id, entries.c.producer_seq).where(
    entries.c.producer_id == bindparam("producer_id"), entries.c.producer_seq.in_(_IDS)
)

_MISSING = object()


class SqlLedgerView:
    """The :class:`~ledger.sequencer.LedgerView` port over one database connection.

    Reads are memoised for the life of the view: it lives inside one transaction of the
    single writer, during which the committed state cannot change (uncommitted changes are
    read from the sequencer's overlay before this view is asked).
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._memo: dict[tuple[str, object], object] = {}

    def _row(self, kind: str, query: Select[Any], **params: object) -> Any:
        memo_key = (kind, tuple(params.values()))
        found = self._memo.get(memo_key, _MISSING)
        if found is _MISSING:
            found = self._conn.execute(query, params).first()
            self._memo[memo_key] = found
        return found

    def prefetch(self, lookups: Lookups) -> None:
        """Answer a batch's :class:`~ledger.sequencer.Lookups` in a few ``IN`` queries and
        memoise the answers, found or not, as the one-row queries would have (same keys)."""
        by_producer: dict[str, list[str]] = {}
        for producer_id, event_id in lookups.events:
            by_producer.setdefault(producer_id, []).append(event_id)
        for producer_id, event_ids in by_producer.items():
            self._fetch("seq_of_event", _Q_EVENTS_IN, event_ids, "event_id", producer_id)
        by_seq: dict[str, list[int]] = {}
        for producer_id, producer_seq in lookups.producer_seqs:
            by_seq.setdefault(producer_id, []).append(producer_seq)
        for producer_id, seqs in by_seq.items():
            self._fetch("producer_seq", _Q_PRODUCER_SEQS_IN, seqs, "producer_seq", producer_id)
        # A shipment's id is also the id of the batch its receipt creates, and the rules
        # check both tables for either (``ledger.rules._require_new_batch``).
        both = lookups.batch_ids | lookups.shipment_ids
        found = self._fetch("batch", _Q_BATCHES_IN, both, "batch_id")
        parents: dict[object, list[object]] = {batch_id: [] for batch_id in found}
        for chunk in _chunks(found, _IN_CHUNK):
            for row in self._conn.execute(_Q_PARENTS_IN, {"ids": chunk}):
                parents[row.batch_id].append(row)
        for batch_id, rows in parents.items():
            self._memo[("parents", (batch_id,))] = rows
        self._fetch("shipment", _Q_SHIPMENTS_IN, both, "shipment_id")

    def _fetch(
        self,
        kind: str,
        query: Select[Any],
        keys: Iterable[object],
        column: str,
        producer_id: str | None = None,
    ) -> list[object]:
        """Memoise ``kind`` rows for ``keys`` (None where absent); return the keys found."""
        found = []
        prefix = () if producer_id is None else (producer_id,)
        todo = [k for k in keys if (kind, (*prefix, k)) not in self._memo]
        for chunk in _chunks(todo, _IN_CHUNK):
            params: dict[str, object] = {"ids": chunk}
            if producer_id is not None:
                params["producer_id"] = producer_id
            for key in chunk:
                self._memo[(kind, (*prefix, key))] = None
            for row in self._conn.execute(query, params):
                key = getattr(row, column)
                self._memo[(kind, (*prefix, key))] = row
                found.append(key)
        return found

    def participant(self, participant_id: str) -> Participant | None:
        row = self._row("participant", _Q_PARTICIPANT, participant_id=participant_id)
        return _participant(row) if row else None

    def key(self, key_id: str) -> KeyRecord | None:
        row = self._row("key", _Q_KEY, key_id=key_id)
        return _key(row) if row else None

    def batch(self, batch_id: str) -> Batch | None:
        row = self._row("batch", _Q_BATCH, batch_id=batch_id)
        if row is None:
            return None
        parents = self._memo.get(("parents", (batch_id,)))
        if parents is None:
            parents = self._conn.execute(_Q_PARENTS, {"batch_id": batch_id}).all()
            self._memo[("parents", (batch_id,))] = parents
        return _batch(row, tuple(Parent(p.parent_id, p.mass_g) for p in parents))  # type: ignore[attr-defined]

    def shipment(self, shipment_id: str) -> Shipment | None:
        row = self._row("shipment", _Q_SHIPMENT, shipment_id=shipment_id)
        return _shipment(row) if row else None

    def credit(self, site_id: str, material_group: str, period: str) -> CreditAccount | None:
        row = self._row(
            "credit", _Q_CREDIT, site_id=site_id, material_group=material_group, period=period
        )
        return _credit(row) if row else None

    def certificate(self, certificate_id: str) -> CertificateRecord | None:
        row = self._row("certificate", _Q_CERTIFICATE, certificate_id=certificate_id)
        return _certificate(row) if row else None

    def site_owner(self, site_id: str) -> str | None:
        row = self._row("site", _Q_SITE, site_id=site_id)
        return row.participant_id if row else None

    def seq_of_event(self, producer_id: str, event_id: str) -> int | None:
        row = self._row("seq_of_event", _Q_SEQ_OF_EVENT, producer_id=producer_id, event_id=event_id)
        return row.seq if row else None

    def event_of_producer_seq(self, producer_id: str, producer_seq: int) -> str | None:
        row = self._row(
            "producer_seq",
            _Q_EVENT_OF_PRODUCER_SEQ,
            producer_id=producer_id,
            producer_seq=producer_seq,
        )
        return row.event_id if row else None


def _participant(row: object) -> Participant:
    r = row._mapping  # type: ignore[attr-defined]
    return Participant(
        participant_id=r["participant_id"],
        legal_name=r["legal_name"],
        country=r["country"],
        roles=tuple(Role(role) for role in json.loads(r["roles"])),
        sites=tuple(Site(**site) for site in json.loads(r["sites"])),
        enrolled_seq=r["enrolled_seq"],
    )


def _key(row: object) -> KeyRecord:
    r = row._mapping  # type: ignore[attr-defined]
    return KeyRecord(
        r["key_id"],
        r["participant_id"],
        bytes(r["public_key"]),
        KeyStatus(r["status"]),
        r["added_seq"],
    )


def _batch(row: object, parents: tuple[Parent, ...]) -> Batch:
    r = row._mapping  # type: ignore[attr-defined]
    model = r["custody_model"]
    return Batch(
        batch_id=r["batch_id"],
        owner_id=r["owner_id"],
        site_id=r["site_id"],
        material=r["material"],
        mass_g=r["mass_g"],
        remaining_g=r["remaining_g"],
        composition=Composition(r["virgin_g"], r["pre_consumer_g"], r["post_consumer_g"]),
        custody_model=CustodyModel(model) if model else None,
        parents=parents,
        created_seq=r["created_seq"],
    )


def _shipment(row: object) -> Shipment:
    return Shipment(**row._mapping)  # type: ignore[attr-defined]


def _credit(row: object) -> CreditAccount:
    return CreditAccount(**row._mapping)  # type: ignore[attr-defined]


def _certificate(row: object) -> CertificateRecord:
    r = dict(row._mapping)  # type: ignore[attr-defined]
    r["certificate_sha256"] = bytes(r["certificate_sha256"])
    return CertificateRecord(**r)


# --- writing ----------------------------------------------------------------------------------


def _participant_values(p: Participant) -> dict[str, object]:
    return {
        "participant_id": p.participant_id,
        "legal_name": p.legal_name,
        "country": p.country,
        "roles": json.dumps([role.value for role in p.roles]),
        "sites": json.dumps(
            [{"site_id": s.site_id, "name": s.name, "country": s.country} for s in p.sites]
        ),
        "enrolled_seq": p.enrolled_seq,
    }


def _batch_values(b: Batch) -> dict[str, object]:
    return {
        "batch_id": b.batch_id,
        "owner_id": b.owner_id,
        "site_id": b.site_id,
        "material": b.material,
        "mass_g": b.mass_g,
        "remaining_g": b.remaining_g,
        "virgin_g": b.composition.virgin_g,
        "pre_consumer_g": b.composition.pre_consumer_g,
        "post_consumer_g": b.composition.post_consumer_g,
        "custody_model": b.custody_model.value if b.custody_model else None,
        "created_seq": b.created_seq,
    }


def _upsert(conn: Connection, table: Table, values: dict[str, object]) -> None:
    _upsert_many(conn, table, [values])


def _upsert_many(
    conn: Connection, table: Table, rows: Sequence[dict[str, object]]
) -> set[tuple[object, ...]]:
    """Insert or update ``rows`` with one SELECT and at most two executemany statements;
    return the primary keys that were new."""
    if not rows:
        return set()
    pk = [c.name for c in table.primary_key.columns]
    keys_of = [tuple(row[name] for name in pk) for row in rows]
    existing: set[tuple[object, ...]] = set()
    if len(pk) == 1:
        column = table.c[pk[0]]
        for chunk in _chunks([k[0] for k in keys_of], 500):
            existing.update(
                (v,) for v in conn.execute(select(column).where(column.in_(chunk))).scalars()
            )
    else:
        query = select(*(table.c[n] for n in pk)).where(*(table.c[n] == bindparam(n) for n in pk))
        for key in keys_of:
            if conn.execute(query, dict(zip(pk, key, strict=True))).first() is not None:
                existing.add(key)
    new = [row for row, key in zip(rows, keys_of, strict=True) if key not in existing]
    old = [row for row, key in zip(rows, keys_of, strict=True) if key in existing]
    if new:
        conn.execute(insert(table), new)
    if old:
        where = [table.c[n] == bindparam(f"pk_{n}") for n in pk]
        conn.execute(
            update(table).where(*where),
            [{**row, **{f"pk_{n}": row[n] for n in pk}} for row in old],
        )
    return set(keys_of) - existing


def _chunks(items: list[object], size: int) -> Iterator[list[object]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _key_values(k: KeyRecord) -> dict[str, object]:
    return {
        "key_id": k.key_id,
        "participant_id": k.participant_id,
        "public_key": k.public_key,
        "status": k.status.value,
        "added_seq": k.added_seq,
    }


def write_changes(conn: Connection, state: MemoryState) -> None:
    """Upsert the final version of every record a batch touched (last change wins)."""
    _upsert_many(conn, participants, [_participant_values(p) for p in state.participants.values()])
    _upsert_many(
        conn,
        sites,
        [
            {"site_id": site.site_id, "participant_id": p.participant_id}
            for p in state.participants.values()
            for site in p.sites
        ],
    )
    _upsert_many(conn, keys, [_key_values(k) for k in state.keys.values()])
    new_batches = _upsert_many(conn, batches, [_batch_values(b) for b in state.batches.values()])
    parent_rows = [
        {"batch_id": b.batch_id, "position": n, "parent_id": p.batch_id, "mass_g": p.mass_g}
        for b in state.batches.values()
        if (b.batch_id,) in new_batches
        for n, p in enumerate(b.parents)
    ]
    if parent_rows:
        conn.execute(insert(batch_parents), parent_rows)
    _upsert_many(conn, shipments, [_fields(s) for s in state.shipments.values()])
    _upsert_many(conn, credit_accounts, [_fields(c) for c in state.credits.values()])
    _upsert_many(conn, certificates, [_fields(c) for c in state.certificates.values()])


@dataclass(frozen=True, slots=True)
class Rejection:
    """An envelope a stage refused, with where it came from (for the rejected topic and audit)."""

    stage: str
    reason: str
    message: str
    source_topic: str
    source_partition: int
    source_offset: int
    envelope: bytes


@dataclass(frozen=True, slots=True)
class Position:
    stage: str
    topic: str
    partition: int
    next_offset: int


class LedgerStore:
    """The :class:`EntryStore` port of the sequencer, over one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        migrate(engine)

    @property
    def ledger_id(self) -> str:
        with translated_errors("reading the ledger id"), self.engine.connect() as conn:
            return str(
                conn.execute(
                    select(ledger_info.c.value).where(ledger_info.c.name == "ledger_id")
                ).scalar_one()
            )

    @contextmanager
    def reading(self) -> Iterator[SqlLedgerView]:
        """A view of the committed state inside one read transaction."""
        with translated_errors("reading the ledger"), self.engine.connect() as conn:
            yield SqlLedgerView(conn)

    def head(self, conn: Connection | None = None) -> Head:
        """The chain head, read in ``conn``'s transaction when given."""
        if conn is not None:
            return _head(conn)
        with translated_errors("reading the chain head"), self.engine.connect() as own:
            return _head(own)

    def position(self, stage: str, topic: str, partition: int) -> int:
        with translated_errors("reading a consumer position"), self.engine.connect() as conn:
            found = conn.execute(
                select(consumer_positions.c.next_offset).where(
                    consumer_positions.c.stage == stage,
                    consumer_positions.c.topic == topic,
                    consumer_positions.c.partition == partition,
                )
            ).scalar()
        return int(found) if found is not None else 0

    def positions(self, stage: str) -> dict[tuple[str, int], int]:
        with translated_errors("reading consumer positions"), self.engine.connect() as conn:
            rows = conn.execute(
                select(consumer_positions).where(consumer_positions.c.stage == stage)
            ).all()
        return {(r.topic, r.partition): r.next_offset for r in rows}

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One read-write transaction: the sequencer decides and writes a batch inside it."""
        with translated_errors("a ledger transaction"), self.engine.begin() as conn:
            yield conn

    def write_batch(
        self,
        conn: Connection,
        *,
        size_before: int,
        accepted: Sequence[Accepted],
        changes: MemoryState,
        rejected: Sequence[Rejection],
        positions: Iterable[Position],
    ) -> None:
        """Write one batch inside ``conn``'s transaction (see the module docstring)."""
        if accepted:
            self._append_entries(conn, size_before, [a.entry for a in accepted])
        write_changes(conn, changes)
        self.write_rejections(conn, rejected)
        for pos in positions:
            _upsert(conn, consumer_positions, _fields(pos))

    @staticmethod
    def waiting(conn: Connection) -> list[Waiting]:
        rows = conn.execute(select(waiting_events).order_by(waiting_events.c.position)).all()
        return [
            Waiting.of(Item(r.position, bytes(r.envelope)), Reason(r.reason), r.message)
            for r in rows
        ]

    @staticmethod
    def replace_waiting(conn: Connection, waiting: Sequence[Waiting]) -> None:
        conn.execute(delete(waiting_events))
        if waiting:
            conn.execute(
                insert(waiting_events),
                [
                    {
                        "position": w.item.position,
                        "envelope": w.item.envelope,
                        "reason": w.reason.value,
                        "message": w.message,
                    }
                    for w in waiting
                ],
            )

    @staticmethod
    def write_rejections(conn: Connection, rejected: Sequence[Rejection]) -> None:
        """Record rejections once each (a redelivered rejection is already there)."""
        for rejection in rejected:
            exists = conn.execute(
                select(rejections.c.id).where(
                    rejections.c.stage == rejection.stage,
                    rejections.c.source_topic == rejection.source_topic,
                    rejections.c.source_partition == rejection.source_partition,
                    rejections.c.source_offset == rejection.source_offset,
                )
            ).first()
            if exists is None:
                conn.execute(insert(rejections).values(**_fields(rejection)))

    def save_positions(self, positions: Iterable[Position]) -> None:
        with self.transaction() as conn:
            for pos in positions:
                _upsert(conn, consumer_positions, _fields(pos))

    def _append_entries(self, conn: Connection, size_before: int, new: list[Entry]) -> None:
        conn.execute(insert(entries), [_fields(e) for e in new])
        pending: dict[tuple[int, int], bytes] = {}

        stored = node_reader(conn)

        def get_node(level: int, index: int) -> bytes:
            found = pending.get((level, index))
            return found if found is not None else stored(level, index)

        for offset, entry in enumerate(new):
            for node in nodes_completed_by_append(size_before + offset, entry.leaf_hash, get_node):
                pending[(node.level, node.index)] = node.hash
        conn.execute(
            insert(merkle_nodes),
            [{"level": lvl, "idx": idx, "hash": h} for (lvl, idx), h in pending.items()],
        )


def _head(conn: Connection) -> Head:
    row = conn.execute(
        select(entries.c.seq, entries.c.entry_hash).order_by(entries.c.seq.desc()).limit(1)
    ).first()
    if row is None:
        return Head(0, GENESIS_HASH)
    return Head(row.seq + 1, bytes(row.entry_hash))


def _fields(record: object) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}  # type: ignore[attr-defined]


def load_state(conn: Connection) -> MemoryState:
    """Every projection row as a :class:`MemoryState` (what the audit compares)."""
    state = MemoryState()
    view = SqlLedgerView(conn)
    for row in conn.execute(select(participants)):
        p = _participant(row)
        state.participants[p.participant_id] = p
    for row in conn.execute(select(keys)):
        k = _key(row)
        state.keys[k.key_id] = k
    for (batch_id,) in conn.execute(select(batches.c.batch_id)):
        b = view.batch(batch_id)
        if b is not None:
            state.batches[batch_id] = b
    for row in conn.execute(select(shipments)):
        s = _shipment(row)
        state.shipments[s.shipment_id] = s
    for row in conn.execute(select(credit_accounts)):
        c = _credit(row)
        state.credits[(c.site_id, c.material_group, c.period)] = c
    for row in conn.execute(select(certificates)):
        cert = _certificate(row)
        state.certificates[cert.certificate_id] = cert
    return state


def iter_entries(conn: Connection, batch_size: int = 5_000) -> Iterator[Entry]:
    """Every stored entry in seq order, read in pages so a large ledger streams."""
    after = -1
    while True:
        rows = conn.execute(
            select(entries).where(entries.c.seq > after).order_by(entries.c.seq).limit(batch_size)
        ).all()
        if not rows:
            return
        for r in rows:
            yield Entry(
                seq=r.seq,
                event_id=r.event_id,
                event_type=r.event_type,
                producer_id=r.producer_id,
                producer_seq=r.producer_seq,
                key_id=r.key_id,
                envelope=bytes(r.envelope),
                envelope_sha256=bytes(r.envelope_sha256),
                entry_hash=bytes(r.entry_hash),
            )
        after = rows[-1].seq


_NODE_HASH = select(merkle_nodes.c.hash).where(
    merkle_nodes.c.level == bindparam("level"), merkle_nodes.c.idx == bindparam("idx")
)


def node_reader(conn: Connection) -> Callable[[int, int], bytes]:
    """``get_node(level, index)`` over the stored complete-subtree hashes.

    One prebuilt statement with bound parameters: building a ``select`` per read costs about
    five times the indexed lookup itself (benchmarks/proofs.py measures both). For the
    O(log n) reads of one proof, :func:`nodes_at` does better still: one query for all.
    """

    def get_node(level: int, index: int) -> bytes:
        found = conn.execute(_NODE_HASH, {"level": level, "idx": index}).scalar()
        if found is None:
            raise StoreError(f"Merkle node ({level}, {index}) is not stored")
        return bytes(found)

    return get_node


def iter_merkle_nodes(conn: Connection) -> Iterator[StoredNode]:
    """Every stored complete-subtree node, ordered by level and index."""
    query = select(merkle_nodes).order_by(merkle_nodes.c.level, merkle_nodes.c.idx)
    for row in conn.execute(query):
        yield StoredNode(row.level, row.idx, bytes(row.hash))


def stored_root(conn: Connection, size: int) -> bytes:
    """The RFC 9162 root of the first ``size`` entries, from the stored nodes."""
    return root_hash(size, node_reader(conn))


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    entries: int
    head_hash: bytes
    rejections_by_reason: dict[str, int]
    waiting: int


def summarize(conn: Connection) -> LedgerSummary:
    """What `cehub status` shows of the ledger."""
    head = _head(conn)
    by_reason = {
        r.reason: r.n
        for r in conn.execute(
            select(rejections.c.reason, func.count().label("n")).group_by(rejections.c.reason)
        )
    }
    waiting = conn.execute(select(func.count()).select_from(waiting_events)).scalar_one()
    return LedgerSummary(head.size, head.entry_hash, by_reason, int(waiting))


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    tree_size: int
    root_hash: bytes
    note: str


def latest_checkpoint(conn: Connection) -> StoredCheckpoint | None:
    row = conn.execute(
        select(checkpoints).order_by(checkpoints.c.tree_size.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return StoredCheckpoint(row.tree_size, bytes(row.root_hash), row.note)


def checkpoint_at_least(conn: Connection, size: int) -> StoredCheckpoint | None:
    """The oldest stored checkpoint that covers the first ``size`` entries."""
    row = conn.execute(
        select(checkpoints)
        .where(checkpoints.c.tree_size >= size)
        .order_by(checkpoints.c.tree_size)
        .limit(1)
    ).first()
    if row is None:
        return None
    return StoredCheckpoint(row.tree_size, bytes(row.root_hash), row.note)


def save_checkpoint(conn: Connection, checkpoint: StoredCheckpoint) -> None:
    conn.execute(insert(checkpoints).values(**_fields(checkpoint)))


# --- reads for certificates and traces (verification/store_reader.py) ---------------------------

_IN_CHUNK = 500
"""Ids per ``IN (...)`` clause: well below SQLite's and PostgreSQL's parameter limits."""


def envelopes_at(conn: Connection, seqs: Iterable[int]) -> dict[int, bytes]:
    """The stored envelope bytes of entries ``seqs`` (those that exist)."""
    wanted = sorted(set(seqs))
    found: dict[int, bytes] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        rows = conn.execute(
            select(entries.c.seq, entries.c.envelope).where(entries.c.seq.in_(chunk))
        ).all()
        found.update((r.seq, bytes(r.envelope)) for r in rows)
    return found


def entries_of_types(conn: Connection, event_types: Sequence[str]) -> list[tuple[int, bytes]]:
    """(seq, envelope) of every entry of the given ``event_type`` names, in seq order."""
    rows = conn.execute(
        select(entries.c.seq, entries.c.envelope)
        .where(entries.c.event_type.in_(list(event_types)))
        .order_by(entries.c.seq)
    ).all()
    return [(r.seq, bytes(r.envelope)) for r in rows]


def mass_balance_transformation_seqs(conn: Connection, site_id: str) -> list[int]:
    """Entries of MASS_BALANCE transformations at ``site_id`` (via the batches they made)."""
    rows = conn.execute(
        select(batches.c.created_seq)
        .join(entries, entries.c.seq == batches.c.created_seq)
        .where(
            batches.c.site_id == site_id,
            batches.c.custody_model == CustodyModel.MASS_BALANCE.value,
            entries.c.event_type == "BatchTransformed",
        )
        .distinct()
        .order_by(batches.c.created_seq)
    ).all()
    return [r.created_seq for r in rows]


def child_batch_ids(conn: Connection, batch_id: str) -> list[str]:
    """Batches made (partly) from ``batch_id``, in ledger order."""
    rows = conn.execute(
        select(batches.c.batch_id, batches.c.created_seq)
        .join(batch_parents, batch_parents.c.batch_id == batches.c.batch_id)
        .where(batch_parents.c.parent_id == batch_id)
        .distinct()
        .order_by(batches.c.created_seq, batches.c.batch_id)
    ).all()
    return [r.batch_id for r in rows]


_NODE_BATCH = 64
_NODES_BY_ADDRESS: dict[int, Select[Any]] = {}


def _nodes_statement(count: int) -> Select[Any]:
    statement = _NODES_BY_ADDRESS.get(count)
    if statement is None:
        c = merkle_nodes.c
        condition = (c.level == bindparam("l0")) & (c.idx == bindparam("i0"))
        for n in range(1, count):
            condition = condition | (
                (c.level == bindparam(f"l{n}")) & (c.idx == bindparam(f"i{n}"))
            )
        statement = select(merkle_nodes).where(condition)
        _NODES_BY_ADDRESS[count] = statement
    return statement


def nodes_at(
    conn: Connection, addresses: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """The stored hashes of the complete nodes at ``addresses`` (those that exist), in one query
    per 64 addresses: a proof's O(log n) nodes in one round trip instead of one each.

    The condition is an OR of ``(level, idx)`` equalities, not a row-value ``IN``: SQLite
    answers the ``IN`` with a scan of the whole table (0.3 s at 10^6 leaves) but the OR with one
    primary-key probe per address; PostgreSQL uses the index either way (benchmarks/proofs.py).
    """
    wanted = sorted(set(addresses))
    found: dict[tuple[int, int], bytes] = {}
    for start in range(0, len(wanted), _NODE_BATCH):
        chunk = wanted[start : start + _NODE_BATCH]
        params: dict[str, int] = {}
        for n, (level, index) in enumerate(chunk):
            params[f"l{n}"], params[f"i{n}"] = level, index
        for row in conn.execute(_nodes_statement(len(chunk)), params):
            found[row.level, row.idx] = bytes(row.hash)
    return found
