"""PyPy only: the shim that lets Django 4.2's PostgreSQL backend import psycopg2cffi."""

from __future__ import annotations

import pytest

pytest.importorskip("psycopg2cffi")


def test_django_postgresql_backend_imports_on_psycopg2cffi() -> None:
    from pystack_django.psycopg2cffi_compat import register

    register()
    import psycopg2  # the name Django imports
    from django.db.backends.postgresql import base

    assert psycopg2.__name__ == "psycopg2cffi"
    assert base.psycopg_version() >= (2, 8, 4)
    assert hasattr(psycopg2.extensions.connection, "info")
