from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

try:  # pytest-django's name for it since 4.12 (Python 3.10 and up get that)
    from pytest_django.fixtures import Settings
except ImportError:  # pytest-django 4.11, the last for Python 3.9
    from pytest_django.fixtures import SettingsWrapper as Settings

from pystack_django import cache as pystack_cache
from pystack_django.config import LOCK_DRIVERS

APP_DIR = Path(__file__).resolve().parent.parent
# The URL the deploy renders on this interpreter: psycopg (3) on CPython, psycopg2cffi on PyPy.
PYPY = platform.python_implementation() == "PyPy"
DATABASE_URL = f"postgresql+{LOCK_DRIVERS[platform.python_implementation()]}://app:pw@db1:6432/app"
# Nothing listens here: connection refused at once, like a Redis that is down.
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"
DEAD_REDIS_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


@pytest.fixture(autouse=True)
def _fresh_redis() -> Iterator[None]:
    """Every test starts with an empty fake Redis and no cache back-off in effect."""
    fakeredis.FakeRedis(server=django_settings.FAKE_REDIS_SERVER).flushall()
    pystack_cache._off_until.clear()
    yield
    pystack_cache._off_until.clear()


@pytest.fixture
def cache_redis() -> fakeredis.FakeRedis:
    """A client on the fake Redis behind CACHES["default"], to look at keys and TTLs."""
    return fakeredis.FakeRedis(server=django_settings.FAKE_REDIS_SERVER)


@pytest.fixture
def dead_cache(settings: Settings) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "pystack_django.cache.ResilientRedisCache",
            "LOCATION": DEAD_REDIS_URL,
            "OPTIONS": DEAD_REDIS_OPTIONS,
        }
    }


@pytest.fixture
def no_cache(settings: Settings) -> None:
    """What production settings give without REDIS_CACHE_URL."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


class Statements:
    """SQL statements run inside a `with statements:` block."""

    def __init__(self) -> None:
        self._context = CaptureQueriesContext(connection)

    def __enter__(self) -> Statements:
        self._context.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(*exc)

    @property
    def sql(self) -> list[str]:
        # Savepoints come from transaction.atomic() nested in the test's own transaction.
        return [q["sql"] for q in self._context.captured_queries if "SAVEPOINT" not in q["sql"]]

    @property
    def count(self) -> int:
        return len(self.sql)

    def inserts_into(self, table: str) -> int:
        # SQLite spells ON CONFLICT DO NOTHING as INSERT OR IGNORE.
        prefixes = (f'INSERT INTO "{table}" ', f'INSERT OR IGNORE INTO "{table}" ')
        return sum(1 for s in self.sql if s.startswith(prefixes))


@pytest.fixture
def statements() -> Statements:
    return Statements()


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py with production settings and exactly `env` (plus PATH), as the deploy does."""
    full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=APP_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_python(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
        "DJANGO_SETTINGS_MODULE": "pystack_django.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=APP_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
