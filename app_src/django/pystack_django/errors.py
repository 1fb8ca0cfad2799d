"""A dependency that is down is a quick, clean 503 naming it, never an HTML 500.

Django turns an exception a view (or a middleware) raises into the urlconf's handler500;
this one answers 503 with a JSON body and Retry-After when the exception says PostgreSQL
(through pgbouncer) or the session store is not answering, and a JSON 500 otherwise.
Endpoints that need neither keep serving (the cache degrades to a miss instead, see
cache.py); /livez needs nothing and is what the balancer checks.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import redis
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.http import HttpRequest, JsonResponse

from .cache import describe_error

log = logging.getLogger(__name__)

# What a client is told to wait before it tries again: about how long pgbouncer takes to
# log in again after PostgreSQL is back (server_login_retry).
RETRY_AFTER_SECONDS = 2


class DependencyUnavailable(Exception):
    """A service this request needs is not answering."""

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency} unavailable: {detail}")
        self.dependency = dependency


def unavailable(message: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"error": message, **extra}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def server_error(request: HttpRequest) -> JsonResponse:
    """handler500: called while the exception is being handled (sys.exc_info())."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DependencyUnavailable):
        return unavailable(str(exc), dependency=exc.dependency)
    # A driver may report a dropped connection as a plain DatabaseError (psycopg2cffi
    # does): then the connection is no longer usable.
    if isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DatabaseError) and not connection.is_usable()
    ):
        log.warning("database unavailable: %s", describe_error(exc))
        return unavailable(f"database unavailable: {describe_error(exc)}", dependency="postgresql")
    if isinstance(exc, redis.RedisError):
        return unavailable(f"redis unavailable: {describe_error(exc)}", dependency="redis")
    return JsonResponse({"error": "internal server error"}, status=500)
