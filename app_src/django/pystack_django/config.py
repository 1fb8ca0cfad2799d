"""Helpers that turn environment variables into Django settings (used by settings.py only).

Every helper raises ConfigError with a message naming the variable, so a bad environment
stops the app at start-up (gunicorn: "Worker failed to boot") instead of at the first request.
"""

from __future__ import annotations

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
POSTGRESQL_DRIVERS = ("", "psycopg2", "psycopg2cffi")


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


def database_from_url(url: str) -> tuple[dict[str, Any], str]:
    """Parse the SQLAlchemy-style DATABASE_URL the deploy renders for both apps.

    Returns (DATABASES["default"], driver). Accepted:
      postgresql+psycopg2://USER:PASSWORD@HOST:6432/DB   (CPython, Pyston)
      postgresql+psycopg2cffi://USER:PASSWORD@HOST:6432/DB   (PyPy)
      postgresql://... or postgres://...   (psycopg2 or psycopg2cffi, whichever imports)
      sqlite:// (in memory), sqlite:///relative.db, sqlite:////absolute/path.db
    Query parameters of a PostgreSQL URL are passed to libpq (sslmode=require, ...).
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
    if driver not in POSTGRESQL_DRIVERS:
        raise ConfigError(
            f"DATABASE_URL driver must be psycopg2 or psycopg2cffi (postgresql+psycopg2://), got {driver!r}"
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ConfigError("DATABASE_URL names no database: postgresql+psycopg2://USER:PASSWORD@HOST:6432/DB")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("DATABASE_URL has an invalid port") from None
    options: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    options.update(parse_qsl(parts.query))
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "OPTIONS": options,
        # pgbouncer in transaction mode (see README): no connection outlives the request, and
        # no named (server-side) cursor, which would have to survive across transactions.
        "CONN_MAX_AGE": 0,
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }
    return database, driver or "psycopg2"
