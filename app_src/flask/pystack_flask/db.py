"""Engine and schema, set up for PostgreSQL behind pgbouncer in transaction pooling mode.

Transaction mode hands each transaction to whichever server connection is free, so nothing
may outlive a transaction on the server side, except protocol-level prepared statements, which
pgbouncer >= 1.21 with max_prepared_statements > 0 keeps track of and re-prepares on whichever
server connection runs them:
- psycopg 3 (CPython, Pyston) prepares a query on the server after prepare_threshold executions
  (DB_PREPARE_THRESHOLD, default 5, as psycopg's; "off" for a pgbouncer without
  max_prepared_statements). psycopg2cffi (PyPy) never prepares;
- no server-side (named) cursors: results are fetched whole (stream_results is never used);
- no session state (SET, advisory session locks, temp tables): only transaction-scoped
  forms such as pg_advisory_xact_lock.
pgbouncer does the real pooling, so the per-process pool stays small.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from .config import Settings
from .models import Base

CONNECT_TIMEOUT_SECONDS = 2
POOL_TIMEOUT_SECONDS = 10


def make_engine(settings: Settings) -> Engine:
    url = make_url(settings.database_url)
    options: dict[str, Any] = {"pool_pre_ping": True}
    connect_args: dict[str, Any] = {}

    if url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        if url.get_driver_name() == "psycopg":
            connect_args["prepare_threshold"] = settings.db_prepare_threshold
        options.update(
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=POOL_TIMEOUT_SECONDS,
        )
    elif url.get_backend_name() == "sqlite":
        # Tests: an in-memory database exists per connection, so share a single one.
        connect_args["check_same_thread"] = False
        if url.database in (None, "", ":memory:"):
            options["poolclass"] = StaticPool

    return create_engine(url, connect_args=connect_args, **options)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def create_schema(engine: Engine) -> list[str]:
    """Create missing tables (idempotent: existing tables are left alone); return all table names."""
    Base.metadata.create_all(engine, checkfirst=True)
    return sorted(inspect(engine).get_table_names())
