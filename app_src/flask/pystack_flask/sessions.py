"""Server-side sessions in Redis (REDIS_DURABLE_URL): the cookie carries only a signed id.

Flask opens the session on every request; this one reads Redis only when a view touches
the session, so endpoints that never use it cost no round trip. A session Redis that is
down is an error the client sees (503, Retry-After), never a silently empty or unsaved
session: an endpoint that uses the session answers 503, every other one is unaffected.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any, Callable

import redis
from flask import Flask, Request, Response
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin
from itsdangerous import BadSignature, Signer

from .cache import describe_error
from .errors import RETRY_AFTER_SECONDS, DependencyUnavailable

log = logging.getLogger(__name__)

KEY_PREFIX = "pystack:session:"
serializer = TaggedJSONSerializer()


class RedisSession(SessionMixin):
    def __init__(self, sid: str = "", loader: Callable[[], dict[str, Any]] | None = None) -> None:
        self.sid = sid
        self._loader = loader
        self._data: dict[str, Any] | None = None if loader else {}
        self.new = loader is None
        self.modified = False
        self.accessed = False

    def _items(self) -> dict[str, Any]:
        self.accessed = True
        if self._data is None:
            assert self._loader is not None
            self._data = self._loader()
        return self._data

    @property
    def unread(self) -> bool:
        return self._data is None

    def __getitem__(self, key: str) -> Any:
        return self._items()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._items()[key] = value
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._items()[key]
        self.modified = True

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


class RedisSessionInterface(SessionInterface):
    def __init__(self, client: Any) -> None:
        self.client = client

    @staticmethod
    def _signer(app: Flask) -> Signer:
        return Signer(app.secret_key or "", salt="pystack-session")

    def _load(self, sid: str) -> dict[str, Any]:
        try:
            raw = self.client.get(KEY_PREFIX + sid)
        except redis.RedisError as exc:
            raise DependencyUnavailable("session store", describe_error(exc)) from exc
        return serializer.loads(raw) if raw is not None else {}

    def open_session(self, app: Flask, request: Request) -> RedisSession:
        cookie = request.cookies.get(self.get_cookie_name(app))
        if cookie:
            try:
                sid = self._signer(app).unsign(cookie).decode()
            except BadSignature:
                return RedisSession()
            return RedisSession(sid, loader=lambda: self._load(sid))
        return RedisSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        # Not touched, or its read failed (that request already answers 503): nothing to save.
        if not isinstance(session, RedisSession) or not session.accessed or session.unread:
            return
        response.vary.add("Cookie")
        name = self.get_cookie_name(app)
        domain, path = self.get_cookie_domain(app), self.get_cookie_path(app)
        if not session:
            if session.modified and session.sid:
                try:
                    self.client.delete(KEY_PREFIX + session.sid)
                except redis.RedisError as exc:
                    _refuse(response, exc)
                    return
                response.delete_cookie(name, domain=domain, path=path)
            return
        if not self.should_set_cookie(app, session):
            return
        sid = session.sid or secrets.token_urlsafe(32)
        try:
            self.client.set(
                KEY_PREFIX + sid, serializer.dumps(dict(session)), ex=app.permanent_session_lifetime
            )
        except redis.RedisError as exc:
            _refuse(response, exc)
            return
        response.set_cookie(
            name,
            self._signer(app).sign(sid).decode(),
            expires=self.get_expiration_time(app, session),
            httponly=self.get_cookie_httponly(app),
            domain=domain,
            path=path,
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
        )


def _refuse(response: Response, exc: redis.RedisError) -> None:
    """The session could not be saved: the answer becomes a 503, not a success that forgot it.

    Flask saves the session after the view, outside its error handlers, so the response the
    view made is turned into the same 503 a failed read gives.
    """
    log.warning("session store unavailable, session not saved: %s", describe_error(exc))
    response.status_code = 503
    response.mimetype = "application/json"
    body = {"error": f"session store unavailable: {describe_error(exc)}", "dependency": "session store"}
    response.set_data(json.dumps(body))
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response.headers["Cache-Control"] = "no-store"
