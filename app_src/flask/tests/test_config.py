from __future__ import annotations

import platform
from pathlib import Path

import pytest

from pystack_flask import ConfigError, create_app, db
from pystack_flask.config import LOCK_DRIVERS, database_url_with_driver, load_settings, release_from_path

# The URL the deploy renders on this interpreter: psycopg (3) on CPython, psycopg2cffi on PyPy.
DRIVER = LOCK_DRIVERS[platform.python_implementation()]
PROD_ENV = {"SECRET_KEY": "s3cret", "DATABASE_URL": f"postgresql+{DRIVER}://app:pw@db1:6432/app"}


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


@pytest.mark.parametrize(
    ("url", "implementation", "expected"),
    [
        (
            "postgresql+psycopg://app:p%40ss@db1:6432/app",
            "CPython",
            "postgresql+psycopg://app:p%40ss@db1:6432/app",
        ),
        ("postgresql://app:pw@db1:6432/app", "CPython", "postgresql+psycopg://app:pw@db1:6432/app"),
        ("postgres://app:pw@db1:6432/app", "CPython", "postgresql+psycopg://app:pw@db1:6432/app"),
        # The form earlier deploys wrote: psycopg2 is in no lock any more.
        ("postgresql+psycopg2://app:pw@db1:6432/app", "CPython", "postgresql+psycopg://app:pw@db1:6432/app"),
        (
            "postgresql://app:pw@db1:6432/app?sslmode=require",
            "PyPy",
            "postgresql+psycopg2cffi://app:pw@db1:6432/app?sslmode=require",
        ),
        (
            "postgresql+psycopg2://app:pw@db1:6432/app",
            "PyPy",
            "postgresql+psycopg2cffi://app:pw@db1:6432/app",
        ),
        (
            "postgresql+psycopg2cffi://app:pw@db1:6432/app",
            "PyPy",
            "postgresql+psycopg2cffi://app:pw@db1:6432/app",
        ),
        ("sqlite:////tmp/app.db", "CPython", "sqlite:////tmp/app.db"),
    ],
)
def test_database_url_gets_the_locks_driver(url: str, implementation: str, expected: str) -> None:
    assert database_url_with_driver(url, implementation) == expected


def test_psycopg_is_refused_on_pypy() -> None:
    with pytest.raises(ConfigError, match="use postgresql\\+psycopg2cffi:// on PyPy"):
        database_url_with_driver("postgresql+psycopg://app:pw@db1:6432/app", "PyPy")


def test_database_url_rejects_unknown_driver() -> None:
    with pytest.raises(ConfigError, match="driver must be one of psycopg, psycopg2, psycopg2cffi"):
        load_settings({**PROD_ENV, "DATABASE_URL": "postgresql+asyncpg://app:pw@db1:6432/app"})


def test_settings_carry_this_interpreters_driver() -> None:
    settings = load_settings({**PROD_ENV, "DATABASE_URL": "postgresql://app:pw@db1:6432/app"})
    assert settings.database_url == f"postgresql+{DRIVER}://app:pw@db1:6432/app"


@pytest.mark.parametrize(("raw", "expected"), [("", 5), ("0", 0), ("12", 12), ("off", None), ("None", None)])
def test_prepare_threshold(raw: str, expected: int | None) -> None:
    assert load_settings({**PROD_ENV, "DB_PREPARE_THRESHOLD": raw}).db_prepare_threshold == expected
    assert load_settings(PROD_ENV, {"DB_PREPARE_THRESHOLD": raw}).db_prepare_threshold == expected


def test_prepare_threshold_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="DB_PREPARE_THRESHOLD must be >= 0"):
        load_settings({**PROD_ENV, "DB_PREPARE_THRESHOLD": "-1"})


@pytest.mark.skipif(DRIVER != "psycopg", reason="psycopg 3 is not in PyPy's lock")
@pytest.mark.parametrize(("raw", "expected"), [("", 5), ("off", None)])
def test_psycopg_engine_prepares_after_the_threshold(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: int | None
) -> None:
    seen: dict[str, object] = {}

    def fake_create_engine(url: object, connect_args: dict[str, object], **options: object) -> None:
        seen.update(url=str(url), connect_args=connect_args)

    monkeypatch.setattr(db, "create_engine", fake_create_engine)
    db.make_engine(load_settings({**PROD_ENV, "DB_PREPARE_THRESHOLD": raw}))
    assert seen["url"].startswith("postgresql+psycopg://")  # type: ignore[attr-defined]
    assert seen["connect_args"] == {
        "connect_timeout": db.CONNECT_TIMEOUT_SECONDS,
        "prepare_threshold": expected,
    }


def test_redis_urls_new_names_and_fallbacks() -> None:
    new = {"REDIS_URL": "redis://app:pw@cache1:6379", "REDIS_DURABLE_URL": "redis://app:pw@cache1:6380"}
    old = {"REDIS_CACHE_URL": "redis://:old@cache1:6379/0", "REDIS_SESSION_URL": "redis://:old@cache1:6380/0"}
    settings = load_settings({**PROD_ENV, **new, **old})
    assert settings.redis_cache_url == new["REDIS_URL"]
    assert settings.redis_session_url == new["REDIS_DURABLE_URL"]
    settings = load_settings({**PROD_ENV, **old})
    assert settings.redis_cache_url == old["REDIS_CACHE_URL"]
    assert settings.redis_session_url == old["REDIS_SESSION_URL"]
    settings = load_settings(PROD_ENV)
    assert (settings.redis_cache_url, settings.redis_session_url) == ("", "")
    assert (
        load_settings(PROD_ENV, {"REDIS_URL": "redis://cache2:6379"}).redis_cache_url == "redis://cache2:6379"
    )


def test_deploy_environment() -> None:
    # What the deploy sends: plain postgresql:// (pgbouncer), Redis URLs without a db, both Celery
    # URLs on the durable instance; no CACHE_TTL.
    durable = "redis://app:pw@cache1:6380"
    settings = load_settings(
        {
            "SECRET_KEY": "k" * 50,
            "DJANGO_SECRET_KEY": "k" * 50,
            "DATABASE_URL": "postgresql://app:pw@db1:6432/app",
            "REDIS_URL": "redis://app:pw@cache1:6379",
            "REDIS_DURABLE_URL": durable,
            "CELERY_BROKER_URL": durable,
            "CELERY_RESULT_BACKEND": durable,
            "RQ_REDIS_URL": durable,
            "DB_PREPARE_THRESHOLD": "off",
            "APP_SERVER": "gunicorn",
            "APP_INTERPRETER": "cpython",
        }
    )
    assert settings.database_url == f"postgresql+{DRIVER}://app:pw@db1:6432/app"
    assert settings.redis_cache_url == "redis://app:pw@cache1:6379"
    assert settings.redis_session_url == durable
    assert settings.celery_broker_url == settings.celery_result_backend == durable
    assert settings.cache_ttl == 30
    assert settings.db_prepare_threshold is None
    assert settings.static_root.name == "staticfiles"
    assert settings.static_root.parent == Path(__file__).resolve().parent.parent
