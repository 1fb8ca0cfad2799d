from __future__ import annotations

import fakeredis
import pytest
from django.test import Client

try:  # pytest-django's name for it since 4.12 (Python 3.10 and up get that)
    from pytest_django.fixtures import Settings
except ImportError:  # pytest-django 4.11, the last for Python 3.9
    from pytest_django.fixtures import SettingsWrapper as Settings

from pystack_django import page
from pystack_django.page import compute_rows

from .conftest import DEAD_REDIS_OPTIONS, DEAD_REDIS_URL, Statements


@pytest.mark.django_db
def test_index_links_static_assets(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/static/css/site.css"' in html
    assert 'src="/static/js/site.js"' in html


@pytest.mark.django_db
def test_index_sidebar_is_a_cached_fragment(client: Client, statements: Statements) -> None:
    client.post("/api/seed?n=3")
    with statements:
        first = client.get("/").content.decode()
    assert statements.count == 1  # the category list, rendered on a fragment-cache miss
    assert "<li>category-01</li>" in first
    with statements:
        assert client.get("/").content.decode() == first
    assert statements.count == 0  # served from {% cache %}
    # A write bumps the generation the fragment varies on: the next index shows new rows.
    client.post("/api/seed?n=20")
    with statements:
        assert "<li>category-11</li>" in client.get("/").content.decode()
    assert statements.count == 1


def test_page_renders_500_rows_deterministically(client: Client) -> None:
    first = client.get("/page")
    assert first.status_code == 200
    assert first["Content-Type"] == "text/html; charset=utf-8"
    html = first.content.decode()
    assert html.count("<tr class=") == 500
    assert "SKU-" in html
    assert client.get("/page").content == first.content


def test_page_formats_like_the_flask_template(client: Client) -> None:
    html = client.get("/page?rows=3").content.decode()
    row = compute_rows(3)[0]
    assert f'<td class="num">{row["total"]:,.2f}</td>' in html
    assert f'<td class="num">{row["share"]:.3%}</td>' in html
    assert f'<td class="num">{row["low"]:.2f}</td>' in html


def test_page_rows_parameter(client: Client) -> None:
    assert client.get("/page?rows=20").content.decode().count("<tr class=") == 20
    assert client.get("/page?rows=x").status_code == 400


def test_compute_rows_is_stable() -> None:
    rows = compute_rows(500)
    assert len(rows) == 500
    assert abs(sum(row["share"] for row in rows) - 1.0) < 1e-9
    assert rows[0] == {**compute_rows(1)[0], "share": rows[0]["share"]}
    assert all(row["low"] <= row["mean"] <= row["high"] for row in rows)


def test_cached_page_skips_the_view(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = page.compute_rows
    monkeypatch.setattr(page, "compute_rows", lambda n: calls.append(n) or real(n))
    first = client.get("/cached")
    second = client.get("/cached")
    assert first.status_code == second.status_code == 200
    assert calls == [500]  # the second answer came from the cache
    assert second.content == first.content
    assert second.content.decode().count("<tr class=") == 500
    assert "max-age=30" in second["Cache-Control"]


@pytest.mark.usefixtures("dead_cache")
def test_cached_page_with_redis_down_renders(client: Client) -> None:
    for _ in range(2):
        response = client.get("/cached")
        assert response.status_code == 200
        assert response.content.decode().count("<tr class=") == 500


def test_server_timing_header(client: Client) -> None:
    assert client.get("/runtime")["Server-Timing"].startswith("app;dur=")


@pytest.fixture
def redis_sessions(settings: Settings) -> fakeredis.FakeRedis:
    server = fakeredis.FakeServer()
    settings.CACHES = {
        **settings.CACHES,
        "sessions": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://fake-sessions:6380/0",
            "KEY_PREFIX": "pystack",
            "OPTIONS": {"connection_class": fakeredis.FakeRedisConnection, "server": server},
        },
    }
    settings.SESSION_ENGINE = "pystack_django.sessions"
    settings.SESSION_CACHE_ALIAS = "sessions"
    return fakeredis.FakeRedis(server=server)


def test_session_in_redis(client: Client, redis_sessions: fakeredis.FakeRedis) -> None:
    assert client.get("/api/session").json() == {"visits": 1, "backend": "redis"}
    assert client.get("/api/session").json() == {"visits": 2, "backend": "redis"}
    keys = redis_sessions.keys("pystack:*")
    assert len(keys) == 1
    assert 0 < redis_sessions.ttl(keys[0]) <= 14 * 24 * 3600
    # Endpoints that do not use the session do not read Redis.
    redis_sessions.flushall()
    assert client.get("/runtime").status_code == 200


def test_session_store_down_is_a_visible_503_not_a_silent_reset(settings: Settings) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "sessions": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": DEAD_REDIS_URL,
            "OPTIONS": DEAD_REDIS_OPTIONS,
        },
    }
    settings.SESSION_ENGINE = "pystack_django.sessions"
    settings.SESSION_CACHE_ALIAS = "sessions"
    # As in production: the exception goes to handler500, not to the test.
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "a" * 32
    response = client.get("/api/session")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert response.json()["dependency"] == "session store"
    # A new visitor: nothing to read, but the new session cannot be saved either.
    response = Client(raise_request_exception=False).get("/api/session")
    assert response.status_code == 503
    assert response.json()["error"].startswith("session store unavailable: error: ConnectionError")
    # Endpoints that do not use the session keep serving.
    assert client.get("/runtime").status_code == 200


@pytest.mark.django_db
def test_database_session_without_redis(client: Client) -> None:
    assert client.get("/api/session").json() == {"visits": 1, "backend": "db"}
    assert client.get("/api/session").json() == {"visits": 2, "backend": "db"}
