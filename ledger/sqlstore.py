"""SQLAlchemy adapter: engines for SQLite (default) and PostgreSQL, and error translation.

Everything that talks SQL goes through an engine made here, so the SQLite pragmas and the
translation of SQLAlchemy errors into :class:`ledger.errors.StoreError` live in one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ledger.errors import StoreError

if TYPE_CHECKING:
    from ledger.transport import Record


def open_engine(url: str) -> Engine:
    """An engine for ``url``; for a SQLite file, its folder is created and WAL is switched on.

    WAL lets `cehub status` and `cehub audit` read while the sequencer writes; foreign keys are
    off by default in SQLite and on here, so both back-ends enforce the same constraints.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def translated_errors(action: str) -> Iterator[None]:
    """Turn any SQLAlchemy error raised inside into a StoreError saying what we were doing."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"{action} failed: {exc.__class__.__name__}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    url: str
    backend: str
    server_version: str


def describe_database(engine: Engine) -> DatabaseInfo:
    """What `cehub status` shows: does the database answer, which back-end and version."""
    backend = engine.dialect.name
    query = "select sqlite_version()" if backend == "sqlite" else "show server_version"
    with translated_errors("connecting to the database"), engine.connect() as conn:
        version = str(conn.execute(text(query)).scalar_one())
    return DatabaseInfo(engine.url.render_as_string(hide_password=True), backend, version)


# --- The walking skeleton's table: raw records with their consumed position -------------------
# It proves the path producer -> Kafka -> faust agent -> SQL store on each back-end and keeps the
# position in the same transaction as the rows it produced (the exactly-once pattern the
# sequencer uses).

metadata = MetaData()

smoke_records = Table(
    "smoke_records",
    metadata,
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("key", LargeBinary, nullable=True),
    Column("value_sha256", String(64), nullable=False),
)

consumer_positions = Table(
    "consumer_positions",
    metadata,
    Column("stage", String(64), primary_key=True),
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)


class SmokeStore:
    """Stores raw records once each, with the stage's position, in one transaction."""

    stage = "smoke"

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        with translated_errors("creating the smoke tables"):
            metadata.create_all(engine)

    def positions(self) -> dict[tuple[str, int], int]:
        with translated_errors("reading positions"), self._engine.connect() as conn:
            rows = conn.execute(
                select(
                    consumer_positions.c.topic,
                    consumer_positions.c.partition,
                    consumer_positions.c.next_offset,
                ).where(consumer_positions.c.stage == self.stage)
            )
            return {(r.topic, r.partition): r.next_offset for r in rows}

    def record(self, records: Sequence[Record]) -> int:
        """Append the records not seen before; return how many were new."""
        if not records:
            return 0
        new = 0
        with translated_errors("storing records"), self._engine.begin() as conn:
            known = {
                (r.topic, r.partition): r.next_offset
                for r in conn.execute(
                    select(consumer_positions).where(consumer_positions.c.stage == self.stage)
                )
            }
            for rec in records:
                if rec.offset < known.get((rec.topic, rec.partition), 0):
                    continue  # redelivered: already committed with its position
                conn.execute(
                    insert(smoke_records).values(
                        topic=rec.topic,
                        partition=rec.partition,
                        offset=rec.offset,
                        key=rec.key,
                        value_sha256=hashlib.sha256(rec.value).hexdigest(),
                    )
                )
                new += 1
                _upsert_position(
                    conn,
                    self.stage,
                    topic=rec.topic,
                    partition=rec.partition,
                    next_offset=rec.offset + 1,
                    known=known,
                )
                known[(rec.topic, rec.partition)] = rec.offset + 1
        return new

    def count_topic(self, topic: str) -> int:
        query = (
            select(func.count()).select_from(smoke_records).where(smoke_records.c.topic == topic)
        )
        with translated_errors("counting records"), self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _upsert_position(
    conn: Connection,
    stage: str,
    *,
    topic: str,
    partition: int,
    next_offset: int,
    known: dict[tuple[str, int], int],
) -> None:
    if (topic, partition) in known:
        conn.execute(
            update(consumer_positions)
            .where(
                consumer_positions.c.stage == stage,
                consumer_positions.c.topic == topic,
                consumer_positions.c.partition == partition,
            )
            .values(next_offset=next_offset)
        )
    else:
        conn.execute(
            insert(consumer_positions).values(
                stage=stage, topic=topic, partition=partition, next_offset=next_offset
            )
        )
