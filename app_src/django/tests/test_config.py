from __future__ import annotations

from pathlib import Path

import pytest

from pystack_django import config
from pystack_django.config import ConfigError, database_from_url, release_from_path

from .conftest import DATABASE_URL, PYPY, run_manage, run_python

PROD_ENV = {"SECRET_KEY": "s3cret", "DATABASE_URL": DATABASE_URL}


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


def test_psycopg_url_binds_on_the_server() -> None:
    database, driver = database_from_url(
        "postgresql+psycopg://app:p%40ss%2Fw@db1:6432/app", implementation="CPython"
    )
    assert driver == "psycopg"
    assert database == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "app",
        "USER": "app",
        "PASSWORD": "p@ss/w",
        "HOST": "db1",
        "PORT": "6432",
        # Server-side binding, or psycopg 3 never prepares (Django's default binds on the client).
        "OPTIONS": {"connect_timeout": 2, "server_side_binding": True, "prepare_threshold": 5},
        "CONN_MAX_AGE": 300,
        "CONN_HEALTH_CHECKS": True,
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }
    database = database_from_url(
        "postgresql+psycopg://app@db1/app", implementation="CPython", prepare_threshold=None
    )[0]
    options = database["OPTIONS"]
    assert options == {"connect_timeout": 2, "server_side_binding": True, "prepare_threshold": None}


@pytest.mark.parametrize(
    ("url", "implementation", "driver"),
    [
        ("postgresql://app@db1/app", "CPython", "psycopg"),
        ("postgres://app@db1/app", "CPython", "psycopg"),
        # The form earlier deploys wrote: Django loads psycopg 3 whenever it imports.
        ("postgresql+psycopg2://app@db1/app", "CPython", "psycopg"),
        ("postgresql://app@db1/app", "PyPy", "psycopg2cffi"),
        ("postgresql+psycopg2://app@db1/app", "PyPy", "psycopg2cffi"),
        ("postgresql+psycopg2cffi://app@db1/app", "PyPy", "psycopg2cffi"),
    ],
)
def test_postgresql_urls_get_the_locks_driver(url: str, implementation: str, driver: str) -> None:
    database, seen = database_from_url(url, implementation=implementation)
    assert seen == driver
    assert ("server_side_binding" in database["OPTIONS"]) == (driver == "psycopg")


def test_other_urls() -> None:
    database, driver = database_from_url(
        "postgresql+psycopg2cffi://app:pw@10.0.0.5:6432/app?sslmode=require", implementation="PyPy"
    )
    assert driver == "psycopg2cffi"
    assert database["OPTIONS"] == {"connect_timeout": 2, "sslmode": "require"}
    assert database_from_url("postgresql://app@db1/app")[0]["PORT"] == ""
    assert database_from_url("sqlite://")[0] == {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    assert database_from_url("sqlite:///app.db")[0]["NAME"] == "app.db"
    assert database_from_url("sqlite:////srv/app.db")[0]["NAME"] == "/srv/app.db"


def test_psycopg_is_refused_on_pypy() -> None:
    with pytest.raises(ConfigError, match="use postgresql\\+psycopg2cffi:// on PyPy"):
        database_from_url("postgresql+psycopg://app@db1/app", implementation="PyPy")


@pytest.mark.parametrize(("raw", "expected"), [("", 5), ("0", 0), ("20", 20), ("off", None), ("NONE", None)])
def test_prepare_threshold(raw: str, expected: int | None) -> None:
    assert config.prepare_threshold({"DB_PREPARE_THRESHOLD": raw}) == expected


@pytest.mark.skipif(PYPY, reason="psycopg 3 is not in PyPy's lock")
def test_settings_prepare_on_the_server() -> None:
    result = run_python(
        {**PROD_ENV, "DB_PREPARE_THRESHOLD": "0"},
        "from django.conf import settings as s; o = s.DATABASES['default']['OPTIONS'];"
        "print(s.DATABASE_DRIVER, o['server_side_binding'], o['prepare_threshold'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["psycopg", "True", "0"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://app@db1/app", "must be a postgresql:// or sqlite:// URL"),
        ("postgresql+asyncpg://app@db1/app", "driver must be one of psycopg, psycopg2, psycopg2cffi"),
        ("postgresql://app@db1:6432/", "names no database"),
        ("postgresql://app@db1:port/app", "invalid port"),
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
