from __future__ import annotations

from pathlib import Path

import pytest

from pystack_flask import ConfigError, create_app
from pystack_flask.config import load_settings, release_from_path

PROD_ENV = {"SECRET_KEY": "s3cret", "DATABASE_URL": "postgresql+psycopg2://app:pw@db1:6432/app"}


def test_refuses_to_start_without_secret_key() -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        load_settings({"DATABASE_URL": "sqlite://"})


def test_create_app_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app()
    monkeypatch.setenv("SECRET_KEY", "from-env")
    assert create_app().secret_key == "from-env"


def test_refuses_to_start_without_database_url() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        load_settings({"SECRET_KEY": "x"})


def test_defaults_and_parsing() -> None:
    settings = load_settings({**PROD_ENV, "CACHE_TTL": "45", "APP_SERVER": "uWSGI", "APP_RELEASE": "r42"})
    assert settings.cache_ttl == 45
    assert settings.app_server == "uwsgi"
    assert settings.app_release == "r42"
    assert settings.db_pool_size == 5
    assert settings.db_max_overflow == 10
    assert load_settings(PROD_ENV).cache_ttl == 30


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CACHE_TTL": "soon"}, "CACHE_TTL must be an integer"),
        ({"CACHE_TTL": "0"}, "CACHE_TTL must be >= 1"),
        ({"APP_SERVER": "waitress"}, "APP_SERVER must be one of gunicorn, uwsgi"),
    ],
)
def test_rejects_bad_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({**PROD_ENV, **env})


def test_overrides_win_and_unknown_keys_fail() -> None:
    assert load_settings(PROD_ENV, {"CACHE_TTL": 5}).cache_ttl == 5
    with pytest.raises(ConfigError, match="unknown configuration keys: CACHE_TTTL"):
        load_settings(PROD_ENV, {"CACHE_TTTL": 5})


def test_testing_needs_no_secrets() -> None:
    settings = load_settings({}, {"TESTING": True})
    assert settings.database_url == "sqlite://"
    assert settings.secret_key


def test_release_is_named_after_the_release_directory(tmp_path: Path) -> None:
    package = tmp_path / "releases" / "abc123-cpython-0f0f" / "pystack_flask"
    package.mkdir(parents=True)
    assert release_from_path(package) == "abc123-cpython-0f0f"
    assert release_from_path(tmp_path / "src" / "pystack_flask") == ""
