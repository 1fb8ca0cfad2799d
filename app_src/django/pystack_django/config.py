"""Helpers that turn environment variables into Django settings (used by settings.py only).

Every helper raises ConfigError with a message naming the variable, so a bad environment
stops the app at start-up (gunicorn: "Worker failed to boot") instead of at the first request.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

SERVERS = ("gunicorn", "uwsgi")
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


def require(env: Mapping[str, str], name: str, hint: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: refusing to start. {hint}")
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


def env_list(env: Mapping[str, str], name: str, default: str) -> list[str]:
    return [part.strip() for part in env.get(name, default).split(",") if part.strip()]


def app_server(env: Mapping[str, str]) -> str:
    value = env.get("APP_SERVER", "").strip().lower()
    if value and value not in SERVERS:
        raise ConfigError(f"APP_SERVER must be one of {', '.join(SERVERS)} (or unset), got {value!r}")
    return value


def proxy_ssl_header(env: Mapping[str, str]) -> tuple[str, str] | None:
    """SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto -> ("HTTP_X_FORWARDED_PROTO", "https").

    Only safe when every request comes through a balancer that sets (or strips) that header.
    """
    header = env.get("SECURE_PROXY_SSL_HEADER", "").strip()
    if not header:
        return None
    return "HTTP_" + header.upper().replace("-", "_"), "https"


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
) -> tuple[dict[str, Any], str]:
    """Parse the SQLAlchemy-style DATABASE_URL the deploy renders for both apps.

    Returns (DATABASES["default"], driver). Accepted:
      postgresql+psycopg://USER:PASSWORD@HOST:6432/DB   (CPython, Pyston: psycopg 3)
      postgresql+psycopg2cffi://USER:PASSWORD@HOST:6432/DB   (PyPy)
      postgresql://..., postgres://... and the older postgresql+psycopg2://...: the driver of
        this interpreter's lock (psycopg on CPython, psycopg2cffi on PyPy). Django's backend
        loads psycopg 3 whenever it imports, so on CPython +psycopg2 means psycopg 3 too.
      sqlite:// (in memory), sqlite:///relative.db, sqlite:////absolute/path.db
    Query parameters of a PostgreSQL URL are passed to libpq (sslmode=require, ...).

    With psycopg 3 the cursors bind parameters on the server (server_side_binding) and psycopg
    prepares a query after `prepare_threshold` executions on one connection (None: never).
    Django's defaults with psycopg 3 are client-side binding and prepare_threshold None, which
    never prepare: both options must be set. pgbouncer >= 1.21 with max_prepared_statements
    keeps those prepared statements across transactions in transaction pooling mode.
    """
    parts = urlsplit(url)
    backend, _, driver = parts.scheme.partition("+")
    if backend == "sqlite":
        path = unquote(parts.path)
        name = path[1:] if path.startswith("/") else path
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name or ":memory:"}, "sqlite3"
    if backend not in ("postgresql", "postgres"):
        raise ConfigError(
            f"DATABASE_URL must be a postgresql:// or sqlite:// URL, got scheme {parts.scheme!r}"
        )
    if driver and driver not in POSTGRESQL_DRIVERS:
        raise ConfigError(
            f"DATABASE_URL driver must be one of {', '.join(POSTGRESQL_DRIVERS)} (postgresql+psycopg://), "
            f"got {driver!r}"
        )
    lock_driver = LOCK_DRIVERS.get(implementation or platform.python_implementation(), "psycopg")
    if driver == "psycopg" and lock_driver == "psycopg2cffi":
        raise ConfigError(
            "DATABASE_URL asks for psycopg (3), which PyPy's lock does not install (a PyPy ctypes bug): "
            "use postgresql+psycopg2cffi:// on PyPy"
        )
    if driver in ("", "psycopg2"):
        driver = lock_driver
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ConfigError("DATABASE_URL names no database: postgresql+psycopg://USER:PASSWORD@HOST:6432/DB")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("DATABASE_URL has an invalid port") from None
    options: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if driver == "psycopg":
        options.update(server_side_binding=True, prepare_threshold=prepare_threshold)
    options.update(parse_qsl(parts.query))
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "OPTIONS": options,
        # pgbouncer in transaction mode (see README): a worker keeps its client connection to
        # pgbouncer (no SCRAM handshake per request, and psycopg's prepared statements stay
        # known to it), checked before reuse; pgbouncer hands out a server connection per
        # transaction. No named (server-side) cursor, which would have to outlive a transaction.
        "CONN_MAX_AGE": CONN_MAX_AGE_SECONDS,
        "CONN_HEALTH_CHECKS": True,
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }
    return database, driver
