"""/api/async/redis: N Redis round trips at once on the request's event loop."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest
from django.test import AsyncClient, Client

from items import async_views

try:  # pytest-django's name for it since 4.12 (Python 3.10 and up get that)
    from pytest_django.fixtures import Settings
except ImportError:  # pytest-django 4.11, the last for Python 3.9
    from pytest_django.fixtures import SettingsWrapper as Settings

from .conftest import DEAD_REDIS_URL


@pytest.fixture
def fake_async_redis(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    settings.REDIS_CACHE_URL = "redis://fake:6379/0"
    server = fakeredis.FakeServer()
    monkeypatch.setattr(
        async_views.redis.asyncio, "from_url", lambda url, **kw: fakeredis.FakeAsyncRedis(server=server)
    )


def test_fanout_counts_every_key_under_wsgi(client: Client, fake_async_redis: None) -> None:
    first = client.get("/api/async/redis?keys=5").json()
    assert (first["protocol"], first["keys"], first["total"]) == ("wsgi", 5, 5)
    assert client.get("/api/async/redis?keys=5").json()["total"] == 10


def test_fanout_reports_asgi_on_an_event_loop(fake_async_redis: None) -> None:
    response = asyncio.run(AsyncClient().get("/api/async/redis?keys=1000"))
    data = response.json()
    assert data["protocol"] == "asgi"
    assert data["keys"] == async_views.KEYS_MAX


def test_redis_down_is_a_clean_503(client: Client, settings: Settings) -> None:
    settings.REDIS_CACHE_URL = DEAD_REDIS_URL
    response = client.get("/api/async/redis")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "cache unavailable" in response.json()["error"]


def test_server_timing_is_stamped_on_the_event_loop_too(fake_async_redis: None) -> None:
    response = asyncio.run(AsyncClient().get("/api/async/redis?keys=2"))
    assert response["Server-Timing"].startswith("app;dur=")
