from __future__ import annotations

import redis
import sqlalchemy.exc
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


def test_livez_needs_no_dependency(dead_redis: redis.Redis) -> None:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": "sqlite:////nonexistent-pystack-dir/test.db",
            "REDIS_CACHE_CLIENT": dead_redis,
            "REDIS_SESSION_CLIENT": dead_redis,
        }
    )
    response = app.test_client().get("/livez")
    assert (response.status_code, response.get_json()) == (200, {"status": "alive"})


def test_database_down_is_a_json_503_with_retry_after_only_where_it_is_needed(
    cache_redis: redis.Redis,
) -> None:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": "sqlite:////nonexistent-pystack-dir/test.db",
            "REDIS_CACHE_CLIENT": cache_redis,
        }
    )
    client = app.test_client()
    for method, path in (("GET", "/api/items"), ("POST", "/api/items")):
        response = client.open(
            path, method=method, json={"items": [{"name": "x", "category": "c", "tags": []}]}
        )
        assert response.status_code == 503, (path, response.data[:200])
        assert response.mimetype == "application/json"
        assert response.headers["Retry-After"] == "2"
        data = response.get_json()
        assert data["dependency"] == "postgresql"
        assert data["error"].startswith("database unavailable: error: OperationalError")
    assert client.get("/runtime").status_code == 200
    assert client.get("/page?rows=5").status_code == 200


def test_no_cache_configured_is_not_a_failure() -> None:
    response = make_app().test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"postgresql": "ok", "redis": "disabled"}


def test_a_dropped_connection_a_driver_calls_a_database_error_is_a_503_too() -> None:
    # psycopg2cffi (PyPy) reports "server closed the connection unexpectedly" as a plain
    # DatabaseError; SQLAlchemy marks it as a disconnect (connection_invalidated).
    app = make_app()

    @app.get("/dropped")
    def dropped() -> str:
        raise sqlalchemy.exc.DatabaseError(
            "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True
        )

    @app.get("/integrity")
    def integrity() -> str:
        raise sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))

    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    response = client.get("/dropped")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "2")
    assert response.get_json()["dependency"] == "postgresql"
    # The app's own database errors are not passed off as an outage.
    assert client.get("/integrity").status_code == 500
