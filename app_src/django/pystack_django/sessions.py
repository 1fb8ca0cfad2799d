"""SESSION_ENGINE for REDIS_SESSION_URL: Django's cache sessions, degrading when Redis is down.

The "sessions" cache alias is a plain RedisCache on the durable Redis instance (noeviction,
AOF). Django's cache session store already reads a failing Redis as an empty session; its
writes would raise and turn the response into a 500. Here a failed write logs a warning and
leaves the session unsaved (the visit is served, the next one starts a new session), like
the Flask app. Django reads Redis only when a view touches request.session.
"""

from __future__ import annotations

import logging

import redis
from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore

from .cache import describe_error

log = logging.getLogger(__name__)


class SessionStore(CacheSessionStore):
    def exists(self, session_key: str) -> bool:
        try:
            return super().exists(session_key)
        except redis.RedisError:
            return False

    def save(self, must_create: bool = False) -> None:
        try:
            super().save(must_create=must_create)
        except redis.RedisError as exc:
            log.warning("session redis save failed, session not saved: %s", describe_error(exc))

    def delete(self, session_key: str | None = None) -> None:
        try:
            super().delete(session_key)
        except redis.RedisError as exc:
            log.warning("session redis delete failed: %s", describe_error(exc))
