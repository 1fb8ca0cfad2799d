"""POST /api/tasks and GET /api/tasks/<id>: the Flask app's API, with a task that writes a row.

tests/settings.py runs tasks eagerly (memory transport, results kept in memory).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any, Callable

import pytest
from celery import Celery
from django.conf import settings
from django.test import Client

from items import views
from items.models import TaskRun
from items.tasks import SUMMARIZE_ITEMS, summarize
from pystack_django import celery_app
from pystack_django.celery import PollingRedisBackend

from .conftest import APP_DIR, DEAD_REDIS_URL

SAMPLE = [
    {"name": "kettle", "category": "kitchen", "tags": ["steel", "electric"]},
    {"name": "pan", "category": "kitchen", "tags": ["steel"]},
    {"name": "lamp", "category": "living", "tags": []},
]


@pytest.fixture
def fresh_celery(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Celery]:
    """make(broker_url=..., ...): CELERY_* settings changed, and a new Celery app built from them
    for the views (the project's app reads Django's settings once and keeps its connections)."""

    def make(**celery_settings: Any) -> Celery:
        for name, value in celery_settings.items():
            setattr(settings, f"CELERY_{name.upper()}", value)
        app = Celery("pystack_django")
        app.config_from_object("django.conf:settings", namespace="CELERY")
        monkeypatch.setattr(views, "celery_app", app)
        return app

    return make


@pytest.fixture
def with_items(client: Client) -> Client:
    response = client.post("/api/items", {"items": SAMPLE}, content_type="application/json")
    assert response.status_code == 201
    return client


def test_celery_app_is_configured_from_django_settings() -> None:
    conf = celery_app.conf
    assert celery_app.main == "pystack_django"
    assert SUMMARIZE_ITEMS in celery_app.tasks
    assert conf.task_acks_late is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_default_queue == "pystack_django"
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == conf.result_serializer == "json"
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.result_expires == 3600
    assert conf.override_backends["redis"] == "pystack_django.celery:PollingRedisBackend"
    assert conf.broker_url == settings.CELERY_BROKER_URL == "memory://"


@pytest.mark.django_db
def test_enqueue_and_poll_eager_writes_a_row(with_items: Client) -> None:
    response = with_items.post("/api/tasks?limit=2")
    assert response.status_code == 202
    task_id = response.json()["id"]
    assert response.json() == {"id": task_id}
    assert response["Location"] == f"/api/tasks/{task_id}"

    status = with_items.get(f"/api/tasks/{task_id}")
    assert status.status_code == 200
    assert status["Cache-Control"] == "no-store"
    data = status.json()
    assert (data["id"], data["state"]) == (task_id, "SUCCESS")
    result = data["result"]
    assert (result["limit"], result["sampled"], result["sample_categories"]) == (2, 2, 1)
    assert (result["sample_tags"], result["sample_tag_links"]) == (2, 3)
    assert (result["items"], result["categories"], result["tags"]) == (3, 2, 2)
    assert result["runs"] == 1
    assert result["interpreter"] in ("cpython", "pyston", "pypy")
    assert result["pid"] == os.getpid()
    # The observable write: one row per task id.
    run = TaskRun.objects.get()
    assert (run.task_id, run.limit, run.items) == (task_id, 2, 3)


@pytest.mark.django_db
def test_a_redelivered_task_records_itself_once() -> None:
    assert summarize(5, "same-id")["runs"] == 1
    assert summarize(5, "same-id")["runs"] == 1
    assert summarize(10**6, "other-id")["limit"] == 500
    assert TaskRun.objects.count() == 2


@pytest.mark.django_db
def test_bad_limit_is_400(client: Client) -> None:
    response = client.post("/api/tasks?limit=many")
    assert response.status_code == 400
    assert response.json() == {"error": "limit must be an integer"}


@pytest.mark.django_db
def test_unknown_and_invalid_ids(client: Client) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/api/tasks/{unknown}").json() == {"id": unknown, "state": "PENDING", "result": None}
    assert client.get("/api/tasks/not%20an%20id").status_code == 404
    assert client.get("/api/tasks").status_code == 405


@pytest.mark.django_db
def test_enqueue_without_eager_sends_to_the_broker(client: Client, fresh_celery: Any) -> None:
    fresh_celery(task_always_eager=False)
    response = client.post("/api/tasks?limit=7")
    assert response.status_code == 202
    task_id = response.json()["id"]
    # Nobody consumed it: Celery cannot tell "queued" from "unknown", both are PENDING.
    assert client.get(f"/api/tasks/{task_id}").json()["state"] == "PENDING"
    assert not TaskRun.objects.exists()


def test_failure_is_a_short_error_string(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # No django_db mark: the task's first query is refused, inside the (eager) worker.
    task_id = client.post("/api/tasks").json()["id"]
    data = client.get(f"/api/tasks/{task_id}").json()
    assert data["state"] == "FAILURE"
    assert data["result"].startswith("error: RuntimeError Database access not allowed")
    assert "Traceback" not in data["result"]
    assert len(data["result"]) <= 300


def test_broker_down_is_a_quick_503_naming_the_broker(client: Client, fresh_celery: Any) -> None:
    url = DEAD_REDIS_URL.replace("redis://", "redis://app:s3cret@")
    fresh_celery(task_always_eager=False, broker_url=url)
    started = time.monotonic()
    response = client.post("/api/tasks")
    assert time.monotonic() - started < 10
    assert response.status_code == 503
    data = response.json()
    assert data["broker"] == "redis://app:**@127.0.0.1:1/0"
    assert "task broker unavailable (redis://app:**@127.0.0.1:1/0)" in data["error"]
    assert "s3cret" not in response.content.decode()


def test_result_backend_down_is_503(client: Client, fresh_celery: Any) -> None:
    fresh_celery(result_backend=DEAD_REDIS_URL.replace("/0", "/2"))
    response = client.get("/api/tasks/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 503
    assert response.json()["error"].startswith("result backend unavailable: error: ConnectionError")


def test_not_configured_is_503(client: Client, settings: Any) -> None:
    settings.CELERY_BROKER_URL = ""
    settings.CELERY_RESULT_BACKEND = ""
    response = client.post("/api/tasks")
    assert response.status_code == 503
    assert "CELERY_BROKER_URL (or REDIS_DURABLE_URL)" in response.json()["error"]
    assert client.get("/api/tasks/abc").status_code == 503


def test_polling_backend_is_selected_for_redis_urls() -> None:
    app = Celery("probe")
    app.config_from_object(
        {
            "result_backend": "redis://app:pw@cache1:6380",
            "override_backends": {"redis": "pystack_django.celery:PollingRedisBackend"},
        }
    )
    assert isinstance(app.backend, PollingRedisBackend)
    assert app.backend.connparams["username"] == "app"


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """python ARGS in the app directory with production settings (no DJANGO_SETTINGS_MODULE)."""
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, *args],
        cwd=APP_DIR,
        env={**base, "SECRET_KEY": "x", "DATABASE_URL": "sqlite://", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_worker_app_loads_with_production_settings() -> None:
    durable = "redis://app:pw@127.0.0.1:1"
    code = (
        # The worker sets Django up (Celery's Django fix-up); the tasks module is found then.
        "import django; from pystack_django import celery_app as a; django.setup();"
        "a.loader.import_default_modules(); c = a.conf;"
        "print(a.main, c.broker_url, c.result_backend, c.task_acks_late, c.task_default_queue,"
        " 'pystack_django.summarize_items' in a.tasks)"
    )
    env = {"CELERY_BROKER_URL": durable, "CELERY_RESULT_BACKEND": durable, "REDIS_DURABLE_URL": durable}
    done = _run(env, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pystack_django", durable, durable, "True", "pystack_django", "True"]


def test_worker_refuses_to_start_without_broker() -> None:
    done = _run({}, "-m", "celery", "-A", "pystack_django", "worker", "--pool=solo", "--loglevel=WARNING")
    assert done.returncode != 0
    assert "ConfigError: CELERY_BROKER_URL / CELERY_RESULT_BACKEND are not set" in done.stderr
