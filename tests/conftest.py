"""Session fixtures: use the running Kafka and PostgreSQL, or start them through infra/.

Tests that need a service are marked ``kafka`` or ``postgres``; `make unit` deselects them.
The fixtures start a service only when nothing answers, so a developer's running broker is
reused and CI (nothing running) gets one started by the same scripts the README uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra" / "kafka"))

from ping import api_versions_ok  # noqa: E402  (infra/kafka/ping.py: stdlib-only probe)

KAFKA_PORT = int(os.environ.get("CEHUB_KAFKA_PORT", "9092"))


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of a real broker, started by infra/kafka/start when none answers."""
    if not api_versions_ok("127.0.0.1", KAFKA_PORT):
        subprocess.run([str(ROOT / "infra" / "kafka" / "start")], check=True)
    return f"127.0.0.1:{KAFKA_PORT}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the test database: CEHUB_TEST_POSTGRES_URL, or infra/postgres/start's."""
    url = os.environ.get("CEHUB_TEST_POSTGRES_URL")
    if url:
        return url
    out = subprocess.run(
        [str(ROOT / "infra" / "postgres" / "start")], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic prefix per test, so tests never see each other's records."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server for one test; dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'create database "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def engines() -> Iterator[Callable[[str], Engine]]:
    """Open engines through the project's own factory; all are disposed after the test."""
    from ledger.sqlstore import open_engine

    opened: list[Engine] = []

    def open_(url: str) -> Engine:
        engine = open_engine(url)
        opened.append(engine)
        return engine

    yield open_
    for engine in opened:
        engine.dispose()


def cehub(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> str:
    """Run the installed `cehub` command as a user would; fail the test with its output."""
    exe = Path(sys.executable).with_name("cehub")
    proc = subprocess.run(
        [str(exe), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"cehub {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout
