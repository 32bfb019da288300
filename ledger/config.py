"""Settings of a process: where Kafka is, where the store is, what the ledger is called.

Read once at the edge (CLI start-up) from environment variables, then overridden by flags, then
passed down explicitly; nothing below the CLI reads the environment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_DATA_DIR = Path("var")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a process needs to find its infrastructure.

    ``database_url`` defaults to a SQLite file inside ``data_dir`` so that a newcomer needs
    no database server; PostgreSQL is one URL away (``postgresql+psycopg://...``).
    """

    bootstrap: str = DEFAULT_BOOTSTRAP
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None
    topic_prefix: str = "cehub"
    ledger_name: str = "cehub.local/ledger"
    event_partitions: int = 4
    authority_key: Path | None = None
    """PEM file of the hub authority's key (private, or public only for a hub that does not
    enrol); default ``<data_dir>/keys/authority.pem``."""
    authority_public_key: str | None = None
    """Base64 of the authority's raw Ed25519 public key; wins over ``authority_key``."""

    ledger_key: Path | None = None
    """PEM file of the ledger's own checkpoint-signing key; default
    ``<data_dir>/keys/ledger.pem``, created on first use."""
    checkpoint_every_entries: int = 1000
    checkpoint_every_seconds: float = 10.0

    @property
    def effective_ledger_key(self) -> Path:
        return self.ledger_key or self.data_dir / "keys" / "ledger.pem"

    @property
    def effective_authority_key(self) -> Path:
        return self.authority_key or self.data_dir / "keys" / "authority.pem"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cehub.sqlite').resolve()}"

    def topic(self, name: str) -> str:
        """Full topic name, e.g. ``topic("events") == "cehub.events"``."""
        return f"{self.topic_prefix}.{name}"

    def replace(self, **changes: object) -> Settings:
        """A copy with the given fields changed; ``None`` values are ignored (unset flags)."""
        kept = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **kept)  # type: ignore[arg-type]


ENV_VARS = {
    "CEHUB_BOOTSTRAP": "bootstrap",
    "CEHUB_DATA_DIR": "data_dir",
    "CEHUB_DATABASE_URL": "database_url",
    "CEHUB_TOPIC_PREFIX": "topic_prefix",
    "CEHUB_LEDGER_NAME": "ledger_name",
    "CEHUB_EVENT_PARTITIONS": "event_partitions",
    "CEHUB_AUTHORITY_KEY": "authority_key",
    "CEHUB_AUTHORITY_PUBLIC_KEY": "authority_public_key",
    "CEHUB_LEDGER_KEY": "ledger_key",
    "CEHUB_CHECKPOINT_EVERY": "checkpoint_every_entries",
    "CEHUB_CHECKPOINT_SECONDS": "checkpoint_every_seconds",
}


def settings_from_env(environ: Mapping[str, str]) -> Settings:
    """Settings from ``CEHUB_*`` variables; unset or empty variables keep the defaults."""
    values: dict[str, object] = {}
    for var, field in ENV_VARS.items():
        raw = environ.get(var)
        if not raw:
            continue
        if field in ("data_dir", "authority_key", "ledger_key"):
            values[field] = Path(raw)
        elif field in ("event_partitions", "checkpoint_every_entries"):
            values[field] = int(raw)
        elif field == "checkpoint_every_seconds":
            values[field] = float(raw)
        else:
            values[field] = raw
    return Settings().replace(**values)
