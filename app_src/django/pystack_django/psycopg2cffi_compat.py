"""Let Django 4.2's PostgreSQL backend run on psycopg2cffi (PyPy).

psycopg2cffi's own compat.register() puts it in sys.modules under the name psycopg2. That
was enough before Django 4.2; since 4.2 the backend also imports psycopg2.errors and
psycopg2.sql, two modules psycopg2cffi does not have. What Django uses of them with psycopg2
(django/db/backends/postgresql/psycopg_any.py, creation.py, schema.py) is small:
- sql: only as a namespace; Django installs its own sql.quote() on it;
- errors.DuplicateDatabase: only when Django's test runner creates a test database on a
  server where it exists already (psycopg2cffi raises ProgrammingError with pgcode 42P04
  instead, so that path reports the error rather than offering to replace the database);
- errors.DataError: only on psycopg 3;
- connection.info (psycopg2 >= 2.8): Django reads info.server_version and
  info.parameter_status("TimeZone"); psycopg2cffi has both on the connection itself.
Checked against Django 4.2.30 with psycopg2cffi 2.9.0: tests/test_postgresql.py and a
gunicorn smoke run (README) cover migrate, the ORM writes and the health check.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any


def register() -> None:
    import psycopg2cffi
    from psycopg2cffi import compat

    compat.register()  # sys.modules["psycopg2"] = psycopg2cffi (and its submodules)
    if not hasattr(psycopg2cffi, "errors"):
        errors = ModuleType("psycopg2.errors")
        errors.DataError = psycopg2cffi.DataError  # type: ignore[attr-defined]
        errors.DuplicateDatabase = type(  # type: ignore[attr-defined]
            "DuplicateDatabase", (psycopg2cffi.ProgrammingError,), {}
        )
        psycopg2cffi.errors = errors  # type: ignore[attr-defined]
        sys.modules["psycopg2.errors"] = errors
    connection_class = psycopg2cffi.extensions.connection
    if not hasattr(connection_class, "info"):
        connection_class.info = property(_ConnectionInfo)  # type: ignore[attr-defined]
    if not hasattr(psycopg2cffi, "sql"):
        sql = ModuleType("psycopg2.sql")
        psycopg2cffi.sql = sql  # type: ignore[attr-defined]
        sys.modules["psycopg2.sql"] = sql


class _ConnectionInfo:
    """The two members of psycopg2's ConnectionInfo that Django 4.2 uses."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @property
    def server_version(self) -> int:
        return int(self._connection.server_version)

    def parameter_status(self, name: str) -> str | None:
        return self._connection.get_parameter_status(name)  # type: ignore[no-any-return]
