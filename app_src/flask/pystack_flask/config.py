"""Settings read once, at create_app, from the environment and an optional override dict."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SERVERS = ("gunicorn", "uwsgi", "granian")
# The app's root (the release directory): static/, templates/, staticfiles/ live here.
APP_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """The environment does not describe a runnable application."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    # REDIS_URL (cache instance) and REDIS_DURABLE_URL (durable instance: sessions, Celery).
    redis_cache_url: str = ""
    redis_session_url: str = ""
    # Where `flask digest-static` writes and, once its manifest exists, what /static/ serves.
    static_root: Path = field(default_factory=lambda: APP_ROOT / "staticfiles")
    cache_ttl: int = 30
    app_server: str = ""
    app_interpreter: str = ""
    app_release: str = ""
    db_pool_size: int = 5
    db_max_overflow: int = 10
    # psycopg 3: executions of a query before it is prepared on the server (None: never).
    db_prepare_threshold: int | None = 5
    # Celery: "" when neither CELERY_* nor REDIS_DURABLE_URL is set (then /api/tasks answers 503).
    celery_broker_url: str = ""
    celery_result_backend: str = ""
    testing: bool = False
    # Tests inject ready-made clients (fakeredis) here instead of URLs.
    redis_cache_client: Any = field(default=None, repr=False, compare=False)
    redis_session_client: Any = field(default=None, repr=False, compare=False)


def release_from_path(package_dir: Path | None = None) -> str:
    """The release this code was deployed as: the name of its directory under releases/.

    A deploy unpacks each release into <root>/releases/<id>/ and points <root>/current at it;
    the server imports through the link, so the resolved path names the release being served,
    also after a graceful reload to a new one. Empty when not deployed that way.
    """
    root = (package_dir or Path(__file__).resolve().parent).parent
    return root.name if root.parent.name == "releases" else ""


# Celery's defaults when only REDIS_DURABLE_URL is set: the same durable instance and ACL user,
# broker on db 1 and results on db 2 (sessions stay on the db of REDIS_DURABLE_URL). The deploy
# sets CELERY_BROKER_URL and CELERY_RESULT_BACKEND itself (the durable URL, db 0).
CELERY_BROKER_DB = 1
CELERY_RESULT_DB = 2


def redis_url_with_db(url: str, db: int) -> str:
    """`url` (redis:// or rediss://, credentials and query kept) pointing at database `db`."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(
            f"REDIS_DURABLE_URL must be a redis:// or rediss:// URL to derive the Celery defaults from, "
            f"got scheme {parts.scheme!r}: set CELERY_BROKER_URL and CELERY_RESULT_BACKEND instead"
        )
    return urlunsplit(parts._replace(path=f"/{db}"))


# The PostgreSQL driver each interpreter's lock installs (requirements-cpython.txt, -pypy.txt).
LOCK_DRIVERS = {"CPython": "psycopg", "PyPy": "psycopg2cffi"}
POSTGRESQL_DRIVERS = ("psycopg", "psycopg2", "psycopg2cffi")
# psycopg 3 prepares a query on the server after this many executions (psycopg's default).
DEFAULT_PREPARE_THRESHOLD = 5
PREPARE_THRESHOLD_OFF = ("off", "none")


def database_url_with_driver(url: str, implementation: str | None = None) -> str:
    """`url` with the PostgreSQL driver this interpreter has, for SQLAlchemy.

    postgresql+psycopg:// (CPython, Pyston) and postgresql+psycopg2cffi:// (PyPy) are kept
    (psycopg is refused on PyPy: its lock does not install it).
    postgresql:// and postgres:// name no driver, and SQLAlchemy would pick psycopg2, which no
    lock installs: they get the lock's driver (psycopg on CPython, psycopg2cffi on PyPy). So
    does postgresql+psycopg2://, the form earlier deploys wrote, unless psycopg2 is importable.
    Other URLs (sqlite://) are returned unchanged.
    """
    scheme, sep, rest = url.partition("://")
    backend, _, driver = scheme.partition("+")
    if not sep or backend not in ("postgresql", "postgres"):
        return url
    if driver and driver not in POSTGRESQL_DRIVERS:
        raise ConfigError(
            f"DATABASE_URL driver must be one of {', '.join(POSTGRESQL_DRIVERS)} "
            f"(postgresql+psycopg://), got {driver!r}"
        )
    lock_driver = LOCK_DRIVERS.get(implementation or platform.python_implementation(), "psycopg")
    if driver == "psycopg" and lock_driver == "psycopg2cffi":
        raise ConfigError(
            "DATABASE_URL asks for psycopg (3), which PyPy's lock does not install (a PyPy ctypes bug): "
            "use postgresql+psycopg2cffi:// on PyPy"
        )
    if not driver or (driver == "psycopg2" and find_spec("psycopg2") is None):
        driver = lock_driver
    return f"postgresql+{driver}://{rest}"


def prepare_threshold(raw: Any) -> int | None:
    """DB_PREPARE_THRESHOLD: an integer >= 0 (psycopg's prepare_threshold), or off / none."""
    if not str(raw if raw is not None else "").strip():
        return DEFAULT_PREPARE_THRESHOLD
    if str(raw).strip().lower() in PREPARE_THRESHOLD_OFF:
        return None
    return _int("DB_PREPARE_THRESHOLD", raw, 0)


def _int(name: str, raw: Any, minimum: int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def load_settings(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    require_secret_key: bool = True,
) -> Settings:
    """Build Settings from environment variables; keys in `overrides` (same names) win.

    Outside tests (TESTING true in overrides) SECRET_KEY and DATABASE_URL are required:
    the app refuses to start rather than run with a guessable key or a surprise database.
    The Celery worker passes require_secret_key=False: it serves no HTTP and signs nothing.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {
        "DATABASE_URL": env.get("DATABASE_URL", ""),
        "SECRET_KEY": env.get("SECRET_KEY", ""),
        "REDIS_URL": env.get("REDIS_URL", ""),
        "REDIS_DURABLE_URL": env.get("REDIS_DURABLE_URL", ""),
        # The names earlier deploys used, read when the new ones are unset.
        "REDIS_CACHE_URL": env.get("REDIS_CACHE_URL", ""),
        "REDIS_SESSION_URL": env.get("REDIS_SESSION_URL", ""),
        "STATIC_ROOT": env.get("STATIC_ROOT", ""),
        "CACHE_TTL": env.get("CACHE_TTL", "30"),
        "APP_SERVER": env.get("APP_SERVER", ""),
        "APP_INTERPRETER": env.get("APP_INTERPRETER", ""),
        "APP_RELEASE": env.get("APP_RELEASE", ""),
        "DB_POOL_SIZE": env.get("DB_POOL_SIZE", "5"),
        "DB_MAX_OVERFLOW": env.get("DB_MAX_OVERFLOW", "10"),
        "DB_PREPARE_THRESHOLD": env.get("DB_PREPARE_THRESHOLD", ""),
        "CELERY_BROKER_URL": env.get("CELERY_BROKER_URL", ""),
        "CELERY_RESULT_BACKEND": env.get("CELERY_RESULT_BACKEND", ""),
        "TESTING": False,
        "REDIS_CACHE_CLIENT": None,
        "REDIS_SESSION_CLIENT": None,
    }
    if overrides:
        unknown = sorted(set(overrides) - set(values))
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
        values.update(overrides)

    testing = bool(values["TESTING"])
    secret_key = str(values["SECRET_KEY"] or "")
    if not secret_key:
        if not testing and require_secret_key:
            raise ConfigError(
                "SECRET_KEY is not set: refusing to start. Set the SECRET_KEY environment variable "
                "to a long random string (the deploy generates one per environment)."
            )
        secret_key = "insecure-test-key" if testing else ""  # the worker signs nothing
    database_url = str(values["DATABASE_URL"] or "")
    if not database_url:
        if not testing:
            raise ConfigError(
                "DATABASE_URL is not set: refusing to start. Example: "
                "postgresql+psycopg://app:PASSWORD@db1:6432/app (pgbouncer port)."
            )
        database_url = "sqlite://"
    database_url = database_url_with_driver(database_url)
    app_server = str(values["APP_SERVER"] or "").strip().lower()
    if app_server and app_server not in SERVERS:
        raise ConfigError(f"APP_SERVER must be one of {', '.join(SERVERS)} (or unset), got {app_server!r}")
    redis_cache_url = str(values["REDIS_URL"] or values["REDIS_CACHE_URL"] or "")
    redis_session_url = str(values["REDIS_DURABLE_URL"] or values["REDIS_SESSION_URL"] or "")
    celery_broker_url = str(values["CELERY_BROKER_URL"] or "")
    celery_result_backend = str(values["CELERY_RESULT_BACKEND"] or "")
    if redis_session_url and not celery_broker_url:
        celery_broker_url = redis_url_with_db(redis_session_url, CELERY_BROKER_DB)
    if redis_session_url and not celery_result_backend:
        celery_result_backend = redis_url_with_db(redis_session_url, CELERY_RESULT_DB)
    celery_urls = {"CELERY_BROKER_URL": celery_broker_url, "CELERY_RESULT_BACKEND": celery_result_backend}
    for name, url in celery_urls.items():
        if url and "://" not in url:
            raise ConfigError(f"{name} must be a URL such as redis://app:PASSWORD@cache1:6380/1")

    return Settings(
        database_url=database_url,
        secret_key=secret_key,
        redis_cache_url=redis_cache_url,
        redis_session_url=redis_session_url,
        static_root=Path(values["STATIC_ROOT"] or APP_ROOT / "staticfiles"),
        cache_ttl=_int("CACHE_TTL", values["CACHE_TTL"], 1),
        app_server=app_server,
        app_interpreter=str(values["APP_INTERPRETER"] or ""),
        app_release=str(values["APP_RELEASE"] or "") or release_from_path(),
        db_pool_size=_int("DB_POOL_SIZE", values["DB_POOL_SIZE"], 1),
        db_max_overflow=_int("DB_MAX_OVERFLOW", values["DB_MAX_OVERFLOW"], 0),
        db_prepare_threshold=prepare_threshold(values["DB_PREPARE_THRESHOLD"]),
        celery_broker_url=celery_broker_url,
        celery_result_backend=celery_result_backend,
        testing=testing,
        redis_cache_client=values["REDIS_CACHE_CLIENT"],
        redis_session_client=values["REDIS_SESSION_CLIENT"],
    )
