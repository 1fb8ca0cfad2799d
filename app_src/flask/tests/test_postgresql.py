"""Opt-in checks against a real PostgreSQL (ideally through pgbouncer in transaction mode).

Set PYSTACK_TEST_DATABASE_URL to a THROWAWAY database, e.g.
postgresql+psycopg2://app:pw@127.0.0.1:6432/app_test; its pystack tables are dropped and
recreated. Skipped when the variable is unset.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event

from pystack_flask import create_app, create_schema
from pystack_flask.models import Base
from pystack_flask.state import state
from pystack_flask.tasks import summarize

from .conftest import StatementCounter

DATABASE_URL = os.environ.get("PYSTACK_TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not DATABASE_URL, reason="PYSTACK_TEST_DATABASE_URL is not set")


@pytest.fixture
def pg_app() -> Iterator[Flask]:
    app = create_app(
        {"TESTING": True, "DATABASE_URL": DATABASE_URL, "REDIS_CACHE_CLIENT": fakeredis.FakeRedis()}
    )
    engine = state_engine(app)
    Base.metadata.drop_all(engine)
    create_schema(engine)
    yield app
    Base.metadata.drop_all(engine)
    engine.dispose()


def state_engine(app: Flask) -> Engine:
    with app.app_context():
        return state().engine


@pytest.fixture
def pg_client(pg_app: Flask) -> FlaskClient:
    return pg_app.test_client()


@pytest.fixture
def pg_statements(pg_app: Flask) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    engine = state_engine(pg_app)
    event.listen(engine, "before_cursor_execute", counter)
    yield counter
    event.remove(engine, "before_cursor_execute", counter)


def test_healthz(pg_client: FlaskClient) -> None:
    assert pg_client.get("/healthz").get_json() == {
        "status": "ok",
        "checks": {"postgresql": "ok", "redis": "ok"},
    }


def test_bulk_insert_batches_items(pg_client: FlaskClient, pg_statements: StatementCounter) -> None:
    rows = [
        {"name": f"thing-{i}", "category": f"cat-{i % 5}", "tags": [f"t{i % 7}", "all"]} for i in range(2500)
    ]
    response = pg_client.post("/api/items", json={"items": rows})
    assert response.get_json() == {"created": 2500}
    # 1000 rows per chunk: 3 multi-row INSERT ... RETURNING statements, not 2500.
    assert pg_statements.inserts_into("items") == 3, pg_statements.statements[:6]
    data = pg_client.get("/api/items?limit=500").get_json()
    assert data[0] == {"id": data[0]["id"], "name": "thing-0", "category": "cat-0", "tags": ["all", "t0"]}
    assert [item["name"] for item in data[:3]] == ["thing-0", "thing-1", "thing-2"]
    assert data[6]["tags"] == ["all", "t6"]


def test_no_n_plus_one(pg_client: FlaskClient, pg_statements: StatementCounter) -> None:
    pg_client.post("/api/seed?n=200")
    counts = []
    for limit in (1, 20, 200):
        pg_statements.reset()
        assert len(pg_client.get(f"/api/items?limit={limit}").get_json()) == limit
        counts.append(pg_statements.count)
    assert counts == [2, 2, 2]


def test_seed_is_idempotent(pg_client: FlaskClient) -> None:
    assert pg_client.post("/api/seed?n=50").get_json()["created"] == 50
    again = pg_client.post("/api/seed?n=50").get_json()
    assert again["created"] == 0
    assert again["items"] == 50


def test_summary_task_through_pgbouncer(pg_client: FlaskClient, pg_app: Flask) -> None:
    assert pg_client.post("/api/seed?n=120").status_code == 200
    result = summarize(state_engine(pg_app), 100)
    assert (result["sampled"], result["items"], result["categories"], result["tags"]) == (100, 120, 12, 24)
