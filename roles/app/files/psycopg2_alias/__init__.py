"""psycopg2 on PyPy: psycopg2cffi under psycopg2's name.

Installed by the pystack app role into PyPy virtualenvs that have psycopg2cffi
and no psycopg2, so an app (Django's PostgreSQL backend, SQLAlchemy's psycopg2
dialect, or its own code) imports psycopg2 unchanged. The submodules are
aliased too, so `psycopg2.extensions` is psycopg2cffi's one module, not a copy.

What psycopg2cffi 2.9 lacks and Django (4.2 and later) uses is added:
- psycopg2.sql, as a namespace (Django installs its own sql.quote() on it);
- psycopg2.errors with DataError and DuplicateDatabase (psycopg2cffi raises
  ProgrammingError with pgcode 42P04 where psycopg2 raises the latter);
- connection.info with server_version and parameter_status(), which
  psycopg2cffi has on the connection itself.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from types import ModuleType
from typing import Any

import psycopg2cffi

for _name in ("extensions", "extras", "errorcodes", "errors", "pool", "sql", "tz", "_range", "_json"):
    with contextlib.suppress(ImportError):
        sys.modules["psycopg2." + _name] = importlib.import_module("psycopg2cffi." + _name)

if not hasattr(psycopg2cffi, "errors"):
    _errors = ModuleType("psycopg2.errors")
    _errors.DataError = psycopg2cffi.DataError  # type: ignore[attr-defined]
    _errors.DuplicateDatabase = type("DuplicateDatabase", (psycopg2cffi.ProgrammingError,), {})  # type: ignore[attr-defined]
    psycopg2cffi.errors = _errors  # type: ignore[attr-defined]
    sys.modules["psycopg2.errors"] = _errors

if not hasattr(psycopg2cffi, "sql"):
    _sql = ModuleType("psycopg2.sql")
    psycopg2cffi.sql = _sql  # type: ignore[attr-defined]
    sys.modules["psycopg2.sql"] = _sql


class _ConnectionInfo:
    """The members of psycopg2's ConnectionInfo that Django uses."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @property
    def server_version(self) -> int:
        return int(self._connection.server_version)

    def parameter_status(self, name: str) -> str | None:
        return self._connection.get_parameter_status(name)  # type: ignore[no-any-return]


_connection_class = psycopg2cffi.extensions.connection
if not hasattr(_connection_class, "info"):
    _connection_class.info = property(_ConnectionInfo)  # type: ignore[attr-defined]

sys.modules["psycopg2"] = psycopg2cffi
