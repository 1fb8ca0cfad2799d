from __future__ import annotations

import redis
from flask.testing import FlaskClient

from pystack_flask import create_app

from .conftest import make_app


def test_healthy(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"postgresql": "ok", "redis": "ok"}}
    assert response.headers["Cache-Control"] == "no-store"


def test_redis_down_fails_and_names_redis(dead_redis: redis.Redis) -> None:
    response = make_app(REDIS_CACHE_CLIENT=dead_redis).test_client().get("/healthz")
    assert response.status_code == 503
    data = response.get_json()
    assert data["status"] == "fail"
    assert data["checks"]["postgresql"] == "ok"
    assert data["checks"]["redis"].startswith("error: ConnectionError")


def test_database_down_fails_and_names_postgresql(cache_redis: redis.Redis) -> None:
    # A database file in a directory that does not exist cannot be opened: connect fails.
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": "sqlite:////nonexistent-pystack-dir/test.db",
            "REDIS_CACHE_CLIENT": cache_redis,
        }
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    data = response.get_json()
    assert data["status"] == "fail"
    assert data["checks"]["redis"] == "ok"
    assert data["checks"]["postgresql"].startswith("error: OperationalError")


def test_no_cache_configured_is_not_a_failure() -> None:
    response = make_app().test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"postgresql": "ok", "redis": "disabled"}
