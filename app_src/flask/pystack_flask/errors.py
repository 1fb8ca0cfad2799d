"""A dependency that is down is a quick, clean 503 naming it, never an HTML 500.

PostgreSQL (through pgbouncer) that refuses or drops connections, a session store that
does not answer: the endpoints that need them answer 503 with a JSON body and
Retry-After, while everything else keeps serving (the cache degrades to a miss instead,
see cache.py). /livez needs neither and is what the balancer checks.
"""

from __future__ import annotations

import logging

import sqlalchemy.exc
from flask import Flask, Response, jsonify

from .cache import describe_error

log = logging.getLogger(__name__)

# What a client is told to wait before it tries again: about how long pgbouncer takes to
# log in again after PostgreSQL is back (server_login_retry).
RETRY_AFTER_SECONDS = 2
# Connection failures, not the app's own mistakes (IntegrityError and friends stay 4xx/5xx).
DATABASE_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)


class DependencyUnavailable(Exception):
    """A service this request needs is not answering."""

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency} unavailable: {detail}")
        self.dependency = dependency
        self.detail = detail


def unavailable(message: str, **extra: object) -> Response:
    response = jsonify(error=message, **extra)
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response


def register(app: Flask) -> None:
    @app.errorhandler(DependencyUnavailable)
    def _dependency(exc: DependencyUnavailable) -> Response:
        log.warning("%s", exc)
        return unavailable(str(exc), dependency=exc.dependency)

    @app.errorhandler(sqlalchemy.exc.DBAPIError)
    def _database(exc: sqlalchemy.exc.DBAPIError) -> Response:
        # A driver may report a dropped connection as a plain DatabaseError (psycopg2cffi
        # does); SQLAlchemy flags those as invalidated. Anything else is the app's own error.
        if not isinstance(exc, DATABASE_ERRORS) and not exc.connection_invalidated:
            raise exc
        log.warning("database unavailable: %s", describe_error(exc))
        return unavailable(f"database unavailable: {describe_error(exc)}", dependency="postgresql")

    @app.errorhandler(sqlalchemy.exc.TimeoutError)
    def _pool_timeout(exc: sqlalchemy.exc.TimeoutError) -> Response:
        return unavailable(f"database unavailable: {describe_error(exc)}", dependency="postgresql")
