from pathlib import Path

from ledger.config import Settings, settings_from_env


def test_defaults_need_no_environment() -> None:
    settings = settings_from_env({})
    assert settings.bootstrap == "127.0.0.1:9092"
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("var/cehub.sqlite")
    assert settings.topic("events") == "cehub.events"


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    settings = settings_from_env(
        {
            "CEHUB_BOOTSTRAP": "10.0.0.1:9093",
            "CEHUB_DATA_DIR": "/srv/cehub",
            "CEHUB_EVENT_PARTITIONS": "8",
            "CEHUB_DATABASE_URL": "",
        }
    )
    assert settings.bootstrap == "10.0.0.1:9093"
    assert settings.data_dir == Path("/srv/cehub")
    assert settings.event_partitions == 8
    assert settings.effective_database_url == "sqlite:////srv/cehub/cehub.sqlite"
    flagged = settings.replace(bootstrap="127.0.0.1:1", database_url=None)
    assert flagged.bootstrap == "127.0.0.1:1"
    assert flagged.data_dir == Path("/srv/cehub")


def test_explicit_database_url_wins_over_data_dir() -> None:
    settings = Settings(database_url="postgresql+psycopg://u@h/db")
    assert settings.effective_database_url == "postgresql+psycopg://u@h/db"
