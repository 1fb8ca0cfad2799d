from __future__ import annotations

import json

import pytest
from django.test import Client

from .conftest import run_python

pytestmark = pytest.mark.django_db


def test_healthy(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgresql": "ok", "redis": "ok"}}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.usefixtures("dead_cache")
def test_redis_down_fails_and_names_redis(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    data = response.json()
    assert data["status"] == "fail"
    assert data["checks"]["postgresql"] == "ok"
    assert data["checks"]["redis"].startswith("error: ConnectionError")


@pytest.mark.usefixtures("no_cache")
def test_no_cache_configured_is_not_a_failure(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"postgresql": "ok", "redis": "disabled"}


def test_livez_needs_no_dependency() -> None:
    result = run_python(
        {
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": "sqlite:////nonexistent-pystack-dir/test.db",
            "REDIS_CACHE_URL": "redis://127.0.0.1:1/0",
            "ALLOWED_HOSTS": "testserver",
        },
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "r = Client().get('/livez')\n"
        "print(r.status_code, r.content.decode())",
    )
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.split(" ", 1)
    assert (status, json.loads(body)) == ("200", {"status": "alive"})


def test_database_down_is_a_json_503_with_retry_after_only_where_it_is_needed() -> None:
    result = run_python(
        {
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": "sqlite:////nonexistent-pystack-dir/test.db",
            "ALLOWED_HOSTS": "testserver",
        },
        "import django, json; django.setup()\n"
        "from django.test import Client\n"
        "c = Client(raise_request_exception=False)\n"
        "r = c.get('/api/items')\n"
        "print(json.dumps([r.status_code, r['Content-Type'], r.get('Retry-After'), r.json(),\n"
        "                  c.get('/runtime').status_code, c.get('/livez').status_code]))",
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    status, content_type, retry_after, data, runtime, livez = answer
    assert (status, content_type, retry_after) == (503, "application/json", "2")
    assert data["dependency"] == "postgresql"
    assert data["error"].startswith("database unavailable: error: OperationalError")
    assert (runtime, livez) == (200, 200)


def test_database_down_fails_and_names_postgresql() -> None:
    # Production settings in a fresh process: a database file in a directory that does not
    # exist cannot be opened, so connecting fails; no REDIS_CACHE_URL means no cache.
    result = run_python(
        {
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": "sqlite:////nonexistent-pystack-dir/test.db",
            "ALLOWED_HOSTS": "testserver",
        },
        "import django, json; django.setup()\n"
        "from django.test import Client\n"
        "r = Client().get('/healthz')\n"
        "print(r.status_code, r.content.decode())",
    )
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.split(" ", 1)
    assert status == "503"
    data = json.loads(body)
    assert data["status"] == "fail"
    assert data["checks"]["redis"] == "disabled"
    assert data["checks"]["postgresql"].startswith("error: OperationalError")
