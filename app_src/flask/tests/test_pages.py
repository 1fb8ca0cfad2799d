from __future__ import annotations

import fakeredis
import redis
from flask.testing import FlaskClient

from pystack_flask.page import compute_rows

from .conftest import make_app


def test_index_links_static_assets(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'href="/static/css/site.css"' in html
    assert 'src="/static/js/site.js"' in html
    for path in ("/static/css/site.css", "/static/js/site.js"):
        static = client.get(path)
        assert static.status_code == 200
        static.close()


def test_page_renders_500_rows_deterministically(client: FlaskClient) -> None:
    first = client.get("/page")
    assert first.status_code == 200
    assert first.mimetype == "text/html"
    html = first.get_data(as_text=True)
    assert html.count("<tr class=") == 500
    assert "SKU-" in html
    assert client.get("/page").get_data() == first.get_data()


def test_page_rows_parameter(client: FlaskClient) -> None:
    assert client.get("/page?rows=20").get_data(as_text=True).count("<tr class=") == 20


def test_compute_rows_is_stable() -> None:
    rows = compute_rows(500)
    assert len(rows) == 500
    assert abs(sum(row["share"] for row in rows) - 1.0) < 1e-9
    assert rows[0] == compute_rows(1)[0] | {"share": rows[0]["share"]}
    assert all(row["low"] <= row["mean"] <= row["high"] for row in rows)


def test_server_timing_header(client: FlaskClient) -> None:
    assert client.get("/runtime").headers["Server-Timing"].startswith("app;dur=")


def test_session_in_redis() -> None:
    session_redis = fakeredis.FakeRedis()
    client = make_app(REDIS_SESSION_CLIENT=session_redis).test_client()
    assert client.get("/api/session").get_json() == {"visits": 1, "backend": "redis"}
    assert client.get("/api/session").get_json() == {"visits": 2, "backend": "redis"}
    assert len(session_redis.keys("pystack:session:*")) == 1
    # Endpoints that do not use the session do not read Redis.
    session_redis.flushall()
    assert client.get("/runtime").status_code == 200


def test_session_store_down_is_a_visible_503_not_a_silent_reset(dead_redis: object) -> None:
    session_redis = fakeredis.FakeRedis()
    client = make_app(REDIS_SESSION_CLIENT=session_redis).test_client()
    assert client.get("/api/session").get_json()["visits"] == 1
    # The same client, its session store now down: reading its session fails visibly.
    client.application.session_interface.client = dead_redis
    response = client.get("/api/session")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.get_json()["dependency"] == "session store"
    # Endpoints that do not use the session keep serving.
    assert client.get("/runtime").status_code == 200
    client.application.session_interface.client = session_redis
    assert client.get("/api/session").get_json()["visits"] == 2


class _ReadOnlyRedis(fakeredis.FakeRedis):
    def set(self, *args: object, **kwargs: object) -> None:
        raise redis.ConnectionError("connection refused")


def test_a_session_that_cannot_be_saved_is_a_503_not_a_success() -> None:
    client = make_app(REDIS_SESSION_CLIENT=_ReadOnlyRedis()).test_client()
    response = client.get("/api/session")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.get_json()["error"].startswith("session store unavailable: error: ConnectionError")
    assert "Set-Cookie" not in response.headers


def test_cookie_session_without_redis(client: FlaskClient) -> None:
    assert client.get("/api/session").get_json() == {"visits": 1, "backend": "cookie"}
    assert client.get("/api/session").get_json() == {"visits": 2, "backend": "cookie"}
