from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pystack_flask import ConfigError, create_app
from pystack_flask.config import load_settings, redis_url_with_db
from pystack_flask.state import state
from pystack_flask.taskqueue import POLLING_REDIS_BACKEND, PollingRedisBackend, celery_config, make_celery
from pystack_flask.tasks import SUMMARIZE_ITEMS, summarize

from .conftest import DEAD_REDIS_URL, make_app

APP_DIR = Path(__file__).resolve().parent.parent
SAMPLE = [
    {"name": "kettle", "category": "kitchen", "tags": ["steel", "electric"]},
    {"name": "pan", "category": "kitchen", "tags": ["steel"]},
    {"name": "lamp", "category": "living", "tags": []},
]
# In-process broker and result store: no servers needed.
MEMORY = {"CELERY_BROKER_URL": "memory://", "CELERY_RESULT_BACKEND": "cache+memory://"}


def task_app(eager: bool = True, **config: Any) -> Flask:
    app = make_app(**{**MEMORY, **config})
    with app.app_context():
        state().celery.conf.update(task_always_eager=eager, task_store_eager_result=eager)
    return app


@pytest.fixture
def eager_client() -> FlaskClient:
    client = task_app().test_client()
    assert client.post("/api/items", json={"items": SAMPLE}).status_code == 201
    return client


def test_summarize_counts_and_runtime(app: Flask) -> None:
    client = app.test_client()
    assert client.post("/api/items", json={"items": SAMPLE}).status_code == 201
    with app.app_context():
        engine = state().engine
    result = summarize(engine, 2)
    assert result["limit"] == 2
    assert result["sampled"] == 2
    assert result["sample_categories"] == 1
    assert result["sample_tags"] == 2
    assert result["sample_tag_links"] == 3
    assert (result["items"], result["categories"], result["tags"]) == (3, 2, 2)
    assert result["interpreter"] in ("cpython", "pyston", "pypy")
    assert isinstance(result["jit"], bool)
    assert result["pid"] == os.getpid()
    assert result["worker"]
    # Clamped like /api/items.
    assert summarize(engine, 0)["limit"] == 1
    assert summarize(engine, 10**6)["limit"] == 500


def test_summarize_is_three_statements(app: Flask, statements: Any) -> None:
    app.test_client().post("/api/seed?n=60")
    with app.app_context():
        engine = state().engine
    statements.reset()
    summarize(engine, 50)
    assert statements.count == 3


def test_task_uses_the_apps_engine_when_run_eagerly(app: Flask) -> None:
    with app.app_context():
        celery = state().celery
    assert celery.pystack_engine() is state_engine(app)
    result = celery.tasks[SUMMARIZE_ITEMS].apply(args=(5,)).get()
    assert result["items"] == 0


def state_engine(app: Flask) -> Any:
    with app.app_context():
        return state().engine


def test_enqueue_and_poll_eager(eager_client: FlaskClient) -> None:
    response = eager_client.post("/api/tasks?limit=2")
    assert response.status_code == 202
    task_id = response.get_json()["id"]
    assert response.get_json() == {"id": task_id}
    assert response.headers["Location"] == f"/api/tasks/{task_id}"

    status = eager_client.get(f"/api/tasks/{task_id}")
    assert status.status_code == 200
    data = status.get_json()
    assert data["id"] == task_id
    assert data["state"] == "SUCCESS"
    assert data["result"]["sampled"] == 2
    assert data["result"]["items"] == 3


def test_enqueue_without_eager_sends_to_the_broker() -> None:
    client = task_app(eager=False).test_client()
    response = client.post("/api/tasks?limit=7")
    assert response.status_code == 202
    task_id = response.get_json()["id"]
    # Nobody consumed it: Celery cannot tell "queued" from "unknown", both are PENDING.
    assert client.get(f"/api/tasks/{task_id}").get_json() == {
        "id": task_id,
        "state": "PENDING",
        "result": None,
    }


def test_bad_limit_is_400(eager_client: FlaskClient) -> None:
    response = eager_client.post("/api/tasks?limit=many")
    assert response.status_code == 400
    assert response.get_json() == {"error": "limit must be an integer"}


def test_failure_is_a_short_error_string() -> None:
    # A database that cannot be opened: the task fails inside the (eager) worker.
    app = create_app(
        {"TESTING": True, "DATABASE_URL": "sqlite:////nonexistent-pystack-dir/test.db", **MEMORY}
    )
    with app.app_context():
        state().celery.conf.update(task_always_eager=True, task_store_eager_result=True)
    client = app.test_client()
    task_id = client.post("/api/tasks").get_json()["id"]
    data = client.get(f"/api/tasks/{task_id}").get_json()
    assert data["state"] == "FAILURE"
    # PyPy's sqlite3 words it differently ("Could not open database").
    assert data["result"].startswith("error: OperationalError (")
    assert "sqlite3.OperationalError) " in data["result"]
    assert "Traceback" not in data["result"]
    assert len(data["result"]) <= 300


def test_unknown_and_invalid_ids(eager_client: FlaskClient) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    assert eager_client.get(f"/api/tasks/{unknown}").get_json()["state"] == "PENDING"
    response = eager_client.get("/api/tasks/not%20an%20id")
    assert response.status_code == 404


def test_broker_down_is_a_quick_503_naming_the_broker() -> None:
    url = DEAD_REDIS_URL.replace("redis://", "redis://app:s3cret@").replace("/0", "/1")
    client = make_app(CELERY_BROKER_URL=url, CELERY_RESULT_BACKEND="cache+memory://").test_client()
    started = time.monotonic()
    response = client.post("/api/tasks")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    data = response.get_json()
    assert data["broker"] == "redis://app:**@127.0.0.1:1/1"
    assert "task broker unavailable (redis://app:**@127.0.0.1:1/1)" in data["error"]
    assert "s3cret" not in response.get_data(as_text=True)


def test_result_backend_down_is_503() -> None:
    dead = DEAD_REDIS_URL.replace("/0", "/2")
    client = make_app(CELERY_BROKER_URL="memory://", CELERY_RESULT_BACKEND=dead).test_client()
    response = client.get("/api/tasks/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 503
    assert response.get_json()["error"].startswith("result backend unavailable: error: ConnectionError")


def test_not_configured_is_503() -> None:
    client = make_app().test_client()
    response = client.post("/api/tasks")
    assert response.status_code == 503
    assert "CELERY_BROKER_URL" in response.get_json()["error"]
    assert client.get("/api/tasks/abc").status_code == 503


def test_urls_default_to_the_durable_redis() -> None:
    env = {
        "SECRET_KEY": "x",
        "DATABASE_URL": "sqlite://",
        "REDIS_DURABLE_URL": "redis://app:p%40w@cache1:6380/0",
    }
    settings = load_settings(env)
    assert settings.celery_broker_url == "redis://app:p%40w@cache1:6380/1"
    assert settings.celery_result_backend == "redis://app:p%40w@cache1:6380/2"
    explicit = load_settings({**env, "CELERY_BROKER_URL": "redis://app:pw@q1:6380/5"})
    assert explicit.celery_broker_url == "redis://app:pw@q1:6380/5"
    assert explicit.celery_result_backend == "redis://app:p%40w@cache1:6380/2"
    assert load_settings({"SECRET_KEY": "x", "DATABASE_URL": "sqlite://"}).celery_broker_url == ""
    assert redis_url_with_db("rediss://app:pw@cache1:6380?ssl_cert_reqs=required", 1) == (
        "rediss://app:pw@cache1:6380/1?ssl_cert_reqs=required"
    )
    with pytest.raises(ConfigError, match=r"REDIS_DURABLE_URL must be a redis:// .* CELERY_BROKER_URL and"):
        load_settings({**env, "REDIS_DURABLE_URL": "unix:///run/redis.sock"})
    with pytest.raises(ConfigError, match="CELERY_BROKER_URL must be a URL"):
        load_settings({**env, "CELERY_BROKER_URL": "cache1:6380"})


def test_worker_settings_need_no_secret_key() -> None:
    settings = load_settings({"DATABASE_URL": "sqlite://"}, require_secret_key=False)
    assert settings.secret_key == ""
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        load_settings({}, require_secret_key=False)


def test_celery_configuration() -> None:
    settings = load_settings(
        {"DATABASE_URL": "sqlite://", "REDIS_DURABLE_URL": "redis://app:pw@cache1:6380/0"},
        require_secret_key=False,
    )
    conf = celery_config(settings)
    assert conf["task_acks_late"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["result_expires"] == 3600
    assert conf["broker_connection_retry_on_startup"] is True
    assert conf["accept_content"] == ["json"]
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["task_soft_time_limit"] < conf["task_time_limit"]
    assert conf["broker_transport_options"]["visibility_timeout"] > conf["task_time_limit"]
    assert conf["result_backend"] == "redis://app:pw@cache1:6380/2"
    assert conf["override_backends"]["redis"] == POLLING_REDIS_BACKEND
    celery = make_celery(settings)
    assert isinstance(celery.backend, PollingRedisBackend)
    assert celery.backend.connparams["db"] == 2
    assert celery.backend.connparams["username"] == "app"
    assert SUMMARIZE_ITEMS in celery.tasks


def _import_worker_app(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith(("CELERY_", "REDIS_"))}
    base.pop("DATABASE_URL", None)
    base.pop("SECRET_KEY", None)
    code = "from pystack_flask.celery_app import celery; print(celery.conf.broker_url, celery.main)"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=APP_DIR,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_worker_app_reads_the_environment() -> None:
    done = _import_worker_app(
        {"DATABASE_URL": "sqlite://", "REDIS_DURABLE_URL": "redis://app:pw@127.0.0.1:1/0"}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["redis://app:pw@127.0.0.1:1/1", "pystack_flask"]


def test_worker_app_reads_the_deploys_celery_urls() -> None:
    # What the deploy sends: both Celery URLs on the durable instance, db 0, next to REDIS_DURABLE_URL.
    durable = "redis://app:pw@127.0.0.1:1"
    done = _import_worker_app(
        {
            "DATABASE_URL": "sqlite://",
            "REDIS_DURABLE_URL": durable,
            "CELERY_BROKER_URL": durable,
            "CELERY_RESULT_BACKEND": durable,
        }
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [durable, "pystack_flask"]


def test_worker_app_refuses_to_start_without_broker() -> None:
    done = _import_worker_app({"DATABASE_URL": "sqlite://"})
    assert done.returncode != 0
    assert "ConfigError: CELERY_BROKER_URL is not set" in done.stderr
