from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from pystack_flask import create_app, create_schema
from pystack_flask.state import state

# Nothing listens here: connection refused at once, like a Redis that is down.
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"
# No manifest there: the tests see plain static names, even after a local digest-static run.
NO_STATIC_ROOT = str(Path(__file__).resolve().parent / "no-staticfiles")


def make_app(**config: Any) -> Flask:
    base: dict[str, Any] = {
        "TESTING": True,
        "DATABASE_URL": "sqlite://",
        "SECRET_KEY": "test-secret",
        "STATIC_ROOT": NO_STATIC_ROOT,
    }
    base.update(config)
    app = create_app(base)
    with app.app_context():
        create_schema(state().engine)
    return app


@pytest.fixture
def cache_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def app(cache_redis: fakeredis.FakeRedis) -> Flask:
    return make_app(REDIS_CACHE_CLIENT=cache_redis)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def dead_redis() -> redis.Redis:
    return redis.Redis.from_url(DEAD_REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.executemany: list[str] = []

    def __call__(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        self.statements.append(statement)
        if many:
            self.executemany.append(statement)

    def reset(self) -> None:
        self.statements.clear()
        self.executemany.clear()

    def inserts_into(self, table: str) -> int:
        return sum(1 for s in self.statements if s.startswith(f"INSERT INTO {table} "))

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def statements(app: Flask) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    with app.app_context():
        engine = state().engine
    event.listen(engine, "before_cursor_execute", counter)
    yield counter
    event.remove(engine, "before_cursor_execute", counter)
