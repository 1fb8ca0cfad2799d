from __future__ import annotations

from pathlib import Path

import pytest

from pystack_django import config
from pystack_django.config import ConfigError, database_from_url, release_from_path

from .conftest import run_manage, run_python

PROD_ENV = {"SECRET_KEY": "s3cret", "DATABASE_URL": "postgresql+psycopg2://app:pw@db1:6432/app"}


def test_refuses_to_start_without_secret_key() -> None:
    result = run_manage({"DATABASE_URL": "sqlite://"}, "check")
    assert result.returncode != 0
    assert "ConfigError: SECRET_KEY is not set: refusing to start." in result.stderr


def test_refuses_to_start_without_database_url() -> None:
    result = run_manage({"SECRET_KEY": "x"}, "check")
    assert result.returncode != 0
    assert "ConfigError: DATABASE_URL is not set: refusing to start." in result.stderr


def test_wsgi_application_loads_with_production_settings() -> None:
    result = run_python(
        {**PROD_ENV, "APP_RELEASE": "r42", "CACHE_TTL": "45"},
        "import wsgi; from django.conf import settings as s;"
        "print(s.APP_RELEASE, s.CACHE_TTL, s.DEBUG, s.SESSION_ENGINE, s.CACHES['default']['BACKEND'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "r42",
        "45",
        "False",
        "django.contrib.sessions.backends.db",
        "django.core.cache.backends.dummy.DummyCache",
    ]


def test_redis_urls_select_redis_cache_and_sessions() -> None:
    result = run_python(
        {
            **PROD_ENV,
            "REDIS_CACHE_URL": "redis://app:pw@cache1:6379/0",
            "REDIS_SESSION_URL": "redis://cache1:6380/0",
        },
        "from django.conf import settings as s;"
        "print(s.CACHES['default']['BACKEND'], s.CACHES['default']['TIMEOUT'], s.SESSION_ENGINE,"
        " s.CACHES['sessions']['LOCATION'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "pystack_django.cache.ResilientRedisCache",
        "30",
        "pystack_django.sessions",
        "redis://cache1:6380/0",
    ]


def test_psycopg2_url() -> None:
    database, driver = database_from_url("postgresql+psycopg2://app:p%40ss%2Fw@db1:6432/app")
    assert driver == "psycopg2"
    assert database == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "app",
        "USER": "app",
        "PASSWORD": "p@ss/w",
        "HOST": "db1",
        "PORT": "6432",
        "OPTIONS": {"connect_timeout": 2},
        "CONN_MAX_AGE": 0,
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }


def test_other_urls() -> None:
    database, driver = database_from_url("postgresql+psycopg2cffi://app:pw@10.0.0.5:6432/app?sslmode=require")
    assert driver == "psycopg2cffi"
    assert database["OPTIONS"] == {"connect_timeout": 2, "sslmode": "require"}
    assert database_from_url("postgresql://app@db1/app")[0]["PORT"] == ""
    assert database_from_url("postgres://app@db1/app")[1] == "psycopg2"
    assert database_from_url("sqlite://")[0] == {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    assert database_from_url("sqlite:///app.db")[0]["NAME"] == "app.db"
    assert database_from_url("sqlite:////srv/app.db")[0]["NAME"] == "/srv/app.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://app@db1/app", "must be a postgresql:// or sqlite:// URL"),
        ("postgresql+asyncpg://app@db1/app", "driver must be psycopg2 or psycopg2cffi"),
        ("postgresql+psycopg2://app@db1:6432/", "names no database"),
        ("postgresql+psycopg2://app@db1:port/app", "invalid port"),
    ],
)
def test_bad_database_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        database_from_url(url)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CACHE_TTL": "soon"}, "CACHE_TTL must be an integer"),
        ({"CACHE_TTL": "0"}, "CACHE_TTL must be >= 1"),
        ({"APP_SERVER": "waitress"}, "APP_SERVER must be one of gunicorn, uwsgi"),
        ({"DEBUG": "maybe"}, "DEBUG must be one of"),
    ],
)
def test_rejects_bad_values(env: dict[str, str], message: str) -> None:
    result = run_manage({**PROD_ENV, **env}, "check")
    assert result.returncode != 0
    assert message in result.stderr


def test_helpers() -> None:
    assert config.env_int({"CACHE_TTL": "45"}, "CACHE_TTL", 30, 1) == 45
    assert config.env_int({}, "CACHE_TTL", 30, 1) == 30
    assert config.env_bool({"X": "Yes"}, "X", default=False) is True
    assert config.env_bool({"X": "off"}, "X", default=True) is False
    assert config.env_bool({}, "X", default=True) is True
    assert config.env_list({"H": " a.example, ,10.0.0.5 "}, "H", "") == ["a.example", "10.0.0.5"]
    assert config.app_server({"APP_SERVER": "uWSGI"}) == "uwsgi"
    assert config.proxy_ssl_header({"SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}) == (
        "HTTP_X_FORWARDED_PROTO",
        "https",
    )
    assert config.proxy_ssl_header({}) is None


def test_release_is_named_after_the_release_directory(tmp_path: Path) -> None:
    package = tmp_path / "releases" / "abc123-cpython-0f0f" / "pystack_django"
    package.mkdir(parents=True)
    assert release_from_path(package) == "abc123-cpython-0f0f"
    assert release_from_path(tmp_path / "src" / "pystack_django") == ""
