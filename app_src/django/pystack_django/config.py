"""Helpers that turn environment variables into Django settings (used by settings.py only).

Every helper raises ConfigError with a message naming the variable, so a bad environment
stops the app at start-up (gunicorn: "Worker failed to boot") instead of at the first request.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

SERVERS = ("gunicorn", "uwsgi", "granian")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
# libpq connect timeout: a dead pgbouncer fails a request (or /healthz) fast instead of hanging.
CONNECT_TIMEOUT_SECONDS = 2
POSTGRESQL_DRIVERS = ("psycopg", "psycopg2", "psycopg2cffi")
# The PostgreSQL driver each interpreter's lock installs (requirements-cpython.txt, -pypy.txt).
LOCK_DRIVERS = {"CPython": "psycopg", "PyPy": "psycopg2cffi"}
# How long a worker keeps its connection to pgbouncer (Django's CONN_MAX_AGE).
CONN_MAX_AGE_SECONDS = 300
# psycopg 3 prepares a query on the server after this many executions (psycopg's default).
DEFAULT_PREPARE_THRESHOLD = 5
PREPARE_THRESHOLD_OFF = ("off", "none")
DEFAULT_PROXY_SSL_HEADER = "X-Forwarded-Proto"


class ConfigError(ImproperlyConfigured):
    """The environment does not describe a runnable application."""


def release_from_path(package_dir: Path | None = None) -> str:
    """The release this code was deployed as: the name of its directory under releases/.

    A deploy unpacks each release into <root>/releases/<id>/ and points <root>/current at it;
    the server imports through the link, so the resolved path names the release being served,
    also after a graceful reload to a new one. Empty when not deployed that way.
    """
    root = (package_dir or Path(__file__).resolve().parent).parent
    return root.name if root.parent.name == "releases" else ""


def require(env: Mapping[str, str], name: str, hint: str, *fallbacks: str) -> str:
    """The value of `name` (or else of the first fallback set); ConfigError naming it when none is."""
    value = first_set(env, name, *fallbacks)
    if not value:
        also = f" (nor {' / '.join(fallbacks)})" if fallbacks else ""
        raise ConfigError(f"{name} is not set{also}: refusing to start. {hint}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be one of {', '.join(TRUE_WORDS + FALSE_WORDS)}, got {raw!r}")


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_list(env: Mapping[str, str], name: str, default: str, *fallbacks: str) -> list[str]:
    """A comma-separated list from `name` (or else the first fallback set, or `default`)."""
    raw = first_set(env, name, *fallbacks, default=default)
    return [part.strip() for part in raw.split(",") if part.strip()]


def app_server(env: Mapping[str, str]) -> str:
    value = env.get("APP_SERVER", "").strip().lower()
    if value and value not in SERVERS:
        raise ConfigError(f"APP_SERVER must be one of {', '.join(SERVERS)} (or unset), got {value!r}")
    return value


def proxy_ssl_header(env: Mapping[str, str]) -> tuple[str, str] | None:
    """SECURE_PROXY_SSL_HEADER: the header the balancer sets to "https" on TLS requests.

    Default X-Forwarded-Proto -> ("HTTP_X_FORWARDED_PROTO", "https"): the deploy's balancer
    terminates TLS and sets (overwrites) that header on every request. `off` (or none, false)
    trusts no header: only safe to leave on when every request comes through such a balancer.
    """
    header = env.get("SECURE_PROXY_SSL_HEADER", "").strip() or DEFAULT_PROXY_SSL_HEADER
    if header.lower() in ("off", "none", *FALSE_WORDS):
        return None
    return "HTTP_" + header.upper().replace("-", "_"), "https"


# Celery's defaults when only REDIS_DURABLE_URL is set (as in the Flask app): broker on db 1,
# results on db 2 of the durable instance. The deploy sets both Celery URLs itself.
CELERY_BROKER_DB = 1
CELERY_RESULT_DB = 2


def redis_url_with_db(url: str, db: int) -> str:
    """`url` (redis:// or rediss://, credentials and query kept) on database `db`; "" for ""."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(
            f"REDIS_DURABLE_URL must be a redis:// or rediss:// URL to derive the Celery defaults from, "
            f"got scheme {parts.scheme!r}: set CELERY_BROKER_URL and CELERY_RESULT_BACKEND instead"
        )
    return urlunsplit(parts._replace(path=f"/{db}"))


def first_set(env: Mapping[str, str], *names: str, default: str = "") -> str:
    """The value of the first of `names` that is set and not empty (new name first, then old ones)."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return default


def prepare_threshold(env: Mapping[str, str]) -> int | None:
    """DB_PREPARE_THRESHOLD: an integer >= 0 (psycopg's prepare_threshold), or off / none."""
    raw = env.get("DB_PREPARE_THRESHOLD", "").strip()
    if raw.lower() in PREPARE_THRESHOLD_OFF:
        return None
    return env_int(env, "DB_PREPARE_THRESHOLD", default=DEFAULT_PREPARE_THRESHOLD, minimum=0)


def database_from_url(
    url: str,
    *,
    implementation: str | None = None,
    prepare_threshold: int | None = DEFAULT_PREPARE_THRESHOLD,
    conn_max_age: int = CONN_MAX_AGE_SECONDS,
) -> tuple[dict[str, Any], str]:
    """DATABASE_URL -> (DATABASES["default"], driver), parsed by dj-database-url.

    Accepted:
      postgresql://USER:PASSWORD@HOST:6432/DB (what the deploy sends: pgbouncer), postgres://...:
        the driver of this interpreter's lock (psycopg 3 on CPython and Pyston, psycopg2cffi on
        PyPy, where the deploy makes it importable as psycopg2 for Django's backend)
      postgresql+psycopg://, postgresql+psycopg2cffi:// and the older postgresql+psycopg2://
        (SQLAlchemy-style, as earlier deploys wrote them): the driver suffix is checked against
        the lock (+psycopg is refused on PyPy) and then dropped; Django's backend loads psycopg 3
        whenever it imports, so on CPython +psycopg2 means psycopg 3 too
      sqlite:// (in memory), sqlite:///relative.db, sqlite:////absolute/path.db
    Query parameters of a PostgreSQL URL are passed to libpq (sslmode=require, ...).

    With psycopg 3 the cursors bind parameters on the server (server_side_binding) and psycopg
    prepares a query after `prepare_threshold` executions on one connection (None: never).
    Django's defaults with psycopg 3 are client-side binding and prepare_threshold None, which
    never prepare: both options must be set. pgbouncer >= 1.21 with max_prepared_statements
    keeps those prepared statements across transactions in transaction pooling mode.
    """
    scheme, sep, rest = url.partition("://")
    backend, _, driver = scheme.partition("+")
    if backend == "sqlite" and not driver:
        return dict(_parse(url)), "sqlite3"
    if not sep or backend not in ("postgresql", "postgres"):
        raise ConfigError(f"DATABASE_URL must be a postgresql:// or sqlite:// URL, got scheme {scheme!r}")
    if driver and driver not in POSTGRESQL_DRIVERS:
        raise ConfigError(
            f"DATABASE_URL driver must be one of {', '.join(POSTGRESQL_DRIVERS)} (or none: "
            f"postgresql://), got {driver!r}"
        )
    lock_driver = LOCK_DRIVERS.get(implementation or platform.python_implementation(), "psycopg")
    if driver == "psycopg" and lock_driver == "psycopg2cffi":
        raise ConfigError(
            "DATABASE_URL asks for psycopg (3), which PyPy's lock does not install (a PyPy ctypes bug): "
            "use postgresql:// (or postgresql+psycopg2cffi://) on PyPy"
        )
    database = dict(
        _parse(
            f"postgresql://{rest}",
            # pgbouncer in transaction mode (see README): a worker keeps its client connection to
            # pgbouncer (no SCRAM handshake per request, and psycopg's prepared statements stay
            # known to it), checked before reuse; pgbouncer hands out a server connection per
            # transaction. No named (server-side) cursor, which would have to outlive a transaction.
            conn_max_age=conn_max_age,
            conn_health_checks=True,
            disable_server_side_cursors=True,
        )
    )
    if not database.get("NAME"):
        raise ConfigError("DATABASE_URL names no database: postgresql://USER:PASSWORD@HOST:6432/DB")
    database["PORT"] = str(database.get("PORT") or "")
    options: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if lock_driver == "psycopg":
        options.update(server_side_binding=True, prepare_threshold=prepare_threshold)
    options.update(database.get("OPTIONS", {}))
    database["OPTIONS"] = options
    return database, lock_driver


def _parse(url: str, **options: Any) -> Mapping[str, Any]:
    try:
        return dj_database_url.parse(url, **options)
    except ValueError:
        # dj-database-url's message for a bad port or an unquoted character; never the URL
        # itself, which holds the password.
        raise ConfigError(
            "DATABASE_URL is not a valid URL (an invalid port, or a character of the user or "
            "password that is not percent-encoded?)"
        ) from None
