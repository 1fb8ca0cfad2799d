from __future__ import annotations

from pathlib import Path

import pytest

from pystack_django import config
from pystack_django.config import ConfigError, database_from_url, release_from_path

from .conftest import APP_DIR, DATABASE_URL, PYPY, run_manage, run_python

PROD_ENV = {"SECRET_KEY": "s3cret", "DATABASE_URL": DATABASE_URL}


def test_refuses_to_start_without_secret_key() -> None:
    result = run_manage({"DATABASE_URL": "sqlite://"}, "check")
    assert result.returncode != 0
    assert "ConfigError: DJANGO_SECRET_KEY is not set (nor SECRET_KEY): refusing to start." in result.stderr


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
    sqlite, driver = database_from_url("sqlite://")
    assert (sqlite["ENGINE"], sqlite["NAME"], driver) == ("django.db.backends.sqlite3", ":memory:", "sqlite3")
    assert database_from_url("sqlite:///app.db")[0]["NAME"] == "app.db"
    assert database_from_url("sqlite:////srv/app.db")[0]["NAME"] == "/srv/app.db"


def test_psycopg_is_refused_on_pypy() -> None:
    with pytest.raises(ConfigError, match="use postgresql:// \\(or postgresql\\+psycopg2cffi://\\) on PyPy"):
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
        ("postgresql://app@db1:port/app", "not a valid URL"),
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
    assert config.proxy_ssl_header({}) == ("HTTP_X_FORWARDED_PROTO", "https")
    assert config.proxy_ssl_header({"SECURE_PROXY_SSL_HEADER": "off"}) is None
    assert config.proxy_ssl_header({"SECURE_PROXY_SSL_HEADER": "X-Scheme"}) == ("HTTP_X_SCHEME", "https")
    assert config.first_set({"A": " ", "B": "b", "C": "c"}, "A", "B", "C") == "b"
    assert config.first_set({}, "A", default="d") == "d"
    assert config.env_list({"OLD": "a,b"}, "NEW", "x", "OLD") == ["a", "b"]
    assert config.env_list({"NEW": "n", "OLD": "a,b"}, "NEW", "x", "OLD") == ["n"]
    assert config.env_list({}, "NEW", "x", "OLD") == ["x"]


def test_release_is_named_after_the_release_directory(tmp_path: Path) -> None:
    package = tmp_path / "releases" / "abc123-cpython-0f0f" / "pystack_django"
    package.mkdir(parents=True)
    assert release_from_path(package) == "abc123-cpython-0f0f"
    assert release_from_path(tmp_path / "src" / "pystack_django") == ""


def test_the_deploys_plain_url_gets_the_locks_driver_and_pgbouncer_settings() -> None:
    database, driver = database_from_url("postgresql://app:p%40ss@db1:6432/app", implementation="CPython")
    assert driver == "psycopg"
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["USER"], database["PASSWORD"], database["HOST"], database["PORT"]) == (
        "app",
        "p@ss",
        "db1",
        "6432",
    )
    assert (database["CONN_MAX_AGE"], database["CONN_HEALTH_CHECKS"]) == (300, True)
    assert database["DISABLE_SERVER_SIDE_CURSORS"] is True
    pypy, driver = database_from_url("postgresql://app:pw@db1:6432/app", implementation="PyPy")
    assert driver == "psycopg2cffi"
    assert pypy["ENGINE"] == "django.db.backends.postgresql"  # imports psycopg2: the deploy's alias
    assert pypy["OPTIONS"] == {"connect_timeout": 2}


SETTINGS_PROBE = (
    "from django.conf import settings as s; import json;"
    "print(json.dumps({k: getattr(s, k) for k in ("
    "'SECRET_KEY', 'ALLOWED_HOSTS', 'CELERY_BROKER_URL', 'CELERY_RESULT_BACKEND',"
    "'SESSION_ENGINE', 'CACHE_TTL', 'SECURE_PROXY_SSL_HEADER', 'SECURE_HSTS_SECONDS',"
    "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', 'SESSION_COOKIE_SECURE',"
    "'CSRF_COOKIE_SECURE', 'SECURE_SSL_REDIRECT')}"
    " | {'STATIC_ROOT': str(s.STATIC_ROOT), 'CACHE': s.CACHES['default'].get('LOCATION'),"
    " 'SESSIONS': s.CACHES.get('sessions', {}).get('LOCATION')}))"
)


def probe(env: dict[str, str]) -> dict[str, object]:
    import json

    result = run_python(env, SETTINGS_PROBE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_the_deploys_environment() -> None:
    durable = "redis://app:pw@cache1:6380"
    seen = probe(
        {
            "SECRET_KEY": "k" * 50,
            "DJANGO_SECRET_KEY": "d" * 50,
            "DATABASE_URL": "postgresql://app:pw@db1:6432/app",
            "DJANGO_ALLOWED_HOSTS": "www.example.net,app1,10.0.0.11,127.0.0.1,localhost",
            "REDIS_URL": "redis://app:pw@cache1:6379",
            "REDIS_DURABLE_URL": durable,
            "CELERY_BROKER_URL": durable,
            "CELERY_RESULT_BACKEND": durable,
        }
    )
    assert seen["SECRET_KEY"] == "d" * 50
    assert seen["ALLOWED_HOSTS"] == ["www.example.net", "app1", "10.0.0.11", "127.0.0.1", "localhost"]
    assert seen["CACHE"] == "redis://app:pw@cache1:6379"
    assert seen["SESSIONS"] == durable
    assert seen["SESSION_ENGINE"] == "pystack_django.sessions"
    assert seen["CELERY_BROKER_URL"] == seen["CELERY_RESULT_BACKEND"] == durable
    assert seen["CACHE_TTL"] == 30


def test_production_safe_defaults() -> None:
    seen = probe({"SECRET_KEY": "s3cret", "DATABASE_URL": "sqlite://"})
    assert seen["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert seen["SECURE_HSTS_SECONDS"] == 31536000
    assert seen["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert seen["SECURE_HSTS_PRELOAD"] is True
    assert seen["SESSION_COOKIE_SECURE"] is True
    assert seen["CSRF_COOKIE_SECURE"] is True
    assert seen["SECURE_SSL_REDIRECT"] is False  # the edge redirects
    assert seen["STATIC_ROOT"] == str(APP_DIR / "staticfiles")
    assert seen["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1"]
    assert seen["CELERY_BROKER_URL"] == seen["CELERY_RESULT_BACKEND"] == ""
    # Each stays overridable from the environment.
    seen = probe(
        {
            "SECRET_KEY": "s3cret",
            "DATABASE_URL": "sqlite://",
            "SECURE_PROXY_SSL_HEADER": "off",
            "SECURE_HSTS_SECONDS": "60",
            "SECURE_HSTS_INCLUDE_SUBDOMAINS": "false",
            "SECURE_HSTS_PRELOAD": "no",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "0",
            "STATIC_ROOT": "/srv/static",
            "CACHE_TTL": "45",
        }
    )
    assert seen["SECURE_PROXY_SSL_HEADER"] is None
    assert seen["SECURE_HSTS_SECONDS"] == 60
    assert seen["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is seen["SECURE_HSTS_PRELOAD"] is False
    assert seen["SESSION_COOKIE_SECURE"] is seen["CSRF_COOKIE_SECURE"] is False
    assert seen["STATIC_ROOT"] == "/srv/static"
    assert seen["CACHE_TTL"] == 45


def test_old_variable_names_are_fallbacks() -> None:
    seen = probe(
        {
            "SECRET_KEY": "old-secret",
            "DATABASE_URL": "postgresql+psycopg2://app:pw@db1:6432/app",
            "ALLOWED_HOSTS": "old.example.net",
            "REDIS_CACHE_URL": "redis://:pw@cache1:6379/0",
            "REDIS_SESSION_URL": "redis://:pw@cache1:6380/0",
        }
    )
    assert seen["SECRET_KEY"] == "old-secret"
    assert seen["ALLOWED_HOSTS"] == ["old.example.net"]
    assert seen["CACHE"] == "redis://:pw@cache1:6379/0"
    assert seen["SESSIONS"] == "redis://:pw@cache1:6380/0"
    # Celery's URLs derived from the durable instance, as in the Flask app.
    assert seen["CELERY_BROKER_URL"] == "redis://:pw@cache1:6380/1"
    assert seen["CELERY_RESULT_BACKEND"] == "redis://:pw@cache1:6380/2"


def test_redis_url_with_db() -> None:
    assert config.redis_url_with_db("", 1) == ""
    assert config.redis_url_with_db("rediss://app:pw@cache1:6380?ssl_cert_reqs=required", 2) == (
        "rediss://app:pw@cache1:6380/2?ssl_cert_reqs=required"
    )
    with pytest.raises(ConfigError, match="REDIS_DURABLE_URL must be a redis://"):
        config.redis_url_with_db("unix:///run/redis.sock", 1)


def test_asgi_keeps_no_connection() -> None:
    database, _ = database_from_url("postgresql://app:pw@db1:6432/app", conn_max_age=0)
    assert database["CONN_MAX_AGE"] == 0
    assert database_from_url("postgresql://app:pw@db1:6432/app")[0]["CONN_MAX_AGE"] == 300
