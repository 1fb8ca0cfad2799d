"""Celery application factory: broker and results in the durable Redis, JSON only.

`make_celery(settings)` builds a configured app without connecting anywhere. The web app
builds one in create_app() to enqueue tasks and read results; the worker imports
`pystack_flask.celery_app:celery`, which builds one from the environment.

Redis ACL: the app user has `+@all -@admin -@dangerous ~* &*` (no KEYS, CONFIG, INFO,
FLUSHDB, CLIENT KILL...). kombu's Redis transport and Celery's Redis result backend only use
list, set, sorted-set, hash, string, pub/sub, MULTI/EXEC and PING commands, and the `&*`
channel permission covers the pub/sub the worker uses for remote control (pidbox).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from celery import Celery
from celery.backends.redis import RedisBackend
from kombu.utils.url import maybe_sanitize_url
from sqlalchemy import Engine

from . import tasks
from .config import Settings
from .db import make_engine

# Web side: a broker that is down must cost a request about one connect timeout, not a hang.
BROKER_CONNECT_TIMEOUT_SECONDS = 2.0
BROKER_SOCKET_TIMEOUT_SECONDS = 3.0
# Unacknowledged messages (acks_late) go back to the queue after this long when the worker
# that held them disappeared without a clean shutdown. Must exceed TASK_TIME_LIMIT_SECONDS.
BROKER_VISIBILITY_TIMEOUT_SECONDS = 3600
RESULT_EXPIRES_SECONDS = 3600
TASK_SOFT_TIME_LIMIT_SECONDS = 30
TASK_TIME_LIMIT_SECONDS = 60
HEALTH_CHECK_INTERVAL_SECONDS = 25
POLLING_REDIS_BACKEND = "pystack_flask.taskqueue:PollingRedisBackend"


class PollingRedisBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend without the per-task SUBSCRIBE at enqueue time.

    Celery's RedisBackend subscribes to every task's result channel when a task is sent from a
    non-worker process, so that a later `.get()` can wait on pub/sub. This app never waits: it
    polls (GET /api/tasks/<id> reads the result key). In a long-running web worker those
    subscriptions would only pile up, along with unread result messages on the connection.
    """

    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None


class PystackCelery(Celery):  # type: ignore[misc]
    """A Celery app that also knows the app Settings and hands tasks a database engine."""

    def __init__(self, settings: Settings, engine: Engine | None = None, **kwargs: Any) -> None:
        super().__init__("pystack_flask", **kwargs)
        self.pystack_settings = settings
        self._pystack_engine = engine

    def pystack_engine(self) -> Engine:
        """The engine tasks use, created on first use in the process that runs them.

        A prefork worker child runs one task at a time, so a pool of one connection is enough
        (pgbouncer sees at most concurrency connections per worker host); the overflow stays for
        the threads pool. Same pgbouncer transaction-mode rules as the web app (db.make_engine).
        """
        if self._pystack_engine is None:
            self._pystack_engine = make_engine(replace(self.pystack_settings, db_pool_size=1))
        return self._pystack_engine

    def pystack_forget_engine(self) -> None:
        """After fork: drop an inherited pool without closing the parent's connections."""
        if self._pystack_engine is not None:
            self._pystack_engine.dispose(close=False)
            self._pystack_engine = None

    @property
    def broker_display(self) -> str:
        """The broker URL without its password, for error messages."""
        return str(maybe_sanitize_url(self.pystack_settings.celery_broker_url or "(not configured)"))


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings (new-style lowercase names) for this deployment, for config_from_object."""
    return {
        "broker_url": settings.celery_broker_url or None,
        "result_backend": settings.celery_result_backend or None,
        # redis:// and rediss:// result URLs get the polling backend (read by Celery's loader
        # from the config_from_object mapping; the URL itself stays a plain Redis URL).
        "override_backends": {"redis": POLLING_REDIS_BACKEND, "rediss": POLLING_REDIS_BACKEND},
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        # With acks_late, a task whose connection to the broker is lost is cancelled and
        # redelivered rather than finished unacknowledged (and silences Celery's warning).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_track_started": True,
        "task_soft_time_limit": TASK_SOFT_TIME_LIMIT_SECONDS,
        "task_time_limit": TASK_TIME_LIMIT_SECONDS,
        "result_expires": RESULT_EXPIRES_SECONDS,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": BROKER_CONNECT_TIMEOUT_SECONDS,
        "broker_transport_options": {
            "visibility_timeout": BROKER_VISIBILITY_TIMEOUT_SECONDS,
            "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_SECONDS,
            "socket_timeout": BROKER_SOCKET_TIMEOUT_SECONDS,
            "socket_keepalive": True,
            "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        },
        # Publishing: one retry on a fresh connection (a pooled connection may be stale after a
        # Redis restart), then give up so the request can answer 503.
        "task_publish_retry_policy": {
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
        "redis_socket_connect_timeout": BROKER_CONNECT_TIMEOUT_SECONDS,
        "redis_socket_timeout": BROKER_SOCKET_TIMEOUT_SECONDS,
        "redis_socket_keepalive": True,
        "redis_backend_health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        "worker_hijack_root_logger": True,  # the worker's --loglevel logs to stderr (the journal)
        "timezone": "UTC",
        "enable_utc": True,
    }


def make_celery(
    settings: Settings, engine: Engine | None = None, *, set_as_current: bool = False
) -> PystackCelery:
    """A configured Celery app; nothing connects until a task is sent or a worker starts.

    The tasks are shared tasks (tasks.py), registered on every app built here. `engine`: the
    web app passes its own, so tasks run eagerly (tests) use the same database.
    """
    app = PystackCelery(settings, engine=engine, set_as_current=set_as_current, include=[tasks.__name__])
    app.config_from_object(celery_config(settings))
    return app
