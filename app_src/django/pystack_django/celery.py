"""The Celery app, the way Django projects set one up: `celery -A pystack_django worker`.

    cd /srv/app/current && venv/bin/celery -A pystack_django worker --loglevel=INFO --concurrency=N

Configuration comes from Django's settings, names prefixed CELERY_ (settings.py): broker and
result backend from CELERY_BROKER_URL / CELERY_RESULT_BACKEND (the deploy sets both; else
derived from REDIS_DURABLE_URL), and the same delivery rules as the Flask app (acks late,
prefetch 1, time limits, JSON only). Tasks are found in each installed app's tasks.py.

Database connections in the worker: Celery's Django fix-up closes the connections a pool child
inherits at fork, and before and after each task closes those that are unusable or older than
CONN_MAX_AGE, as Django does around a request; each task runs its writes in one short
transaction, which is what pgbouncer's transaction pooling needs.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals
from celery.backends.redis import RedisBackend

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pystack_django.settings")

app = Celery("pystack_django")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class PollingRedisBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend without the per-task SUBSCRIBE at enqueue time.

    The web app never waits on a result (GET /api/tasks/<id> polls the result key), so the
    subscriptions Celery makes for a later `.get()` would only pile up in the web workers.
    """

    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None


@signals.worker_init.connect
def _refuse_to_start_without_broker(**_: Any) -> None:
    # Without a broker Celery would fall back to amqp://localhost and retry forever. SystemExit,
    # as Celery logs and ignores ordinary exceptions raised by signal handlers.
    from django.conf import settings

    if not settings.CELERY_BROKER_URL or not settings.CELERY_RESULT_BACKEND:
        raise SystemExit(
            "ConfigError: CELERY_BROKER_URL / CELERY_RESULT_BACKEND are not set (nor REDIS_DURABLE_URL "
            "to derive them from): refusing to start. Example: redis://app:PASSWORD@cache1:6380"
        )
