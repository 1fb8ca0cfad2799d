"""The Celery app the workers run, configured from the environment (read once, at import).

    cd /srv/app/current && venv/bin/celery -A pystack_flask.celery_app:celery worker \\
        --loglevel=INFO --concurrency=N

Same environment as the web app: DATABASE_URL (and DB_* settings) for the tasks,
CELERY_BROKER_URL / CELERY_RESULT_BACKEND (the deploy sets both), or REDIS_DURABLE_URL
(formerly REDIS_SESSION_URL) to derive both from (db 1 and db 2 of the durable Redis).
SECRET_KEY is not needed. A missing DATABASE_URL or broker stops the worker at start-up with
a ConfigError naming the variable.
"""

from __future__ import annotations

from typing import Any

from celery import signals

from .config import ConfigError, load_settings
from .taskqueue import PystackCelery, make_celery

__all__ = ["celery"]


def _from_environment() -> PystackCelery:
    settings = load_settings(require_secret_key=False)
    if not settings.celery_broker_url:
        raise ConfigError(
            "CELERY_BROKER_URL is not set (nor REDIS_DURABLE_URL to derive it from): refusing to start. "
            "Example: redis://app:PASSWORD@cache1:6380/1"
        )
    if not settings.celery_result_backend:
        raise ConfigError(
            "CELERY_RESULT_BACKEND is not set (nor REDIS_DURABLE_URL to derive it from): refusing to start. "
            "Example: redis://app:PASSWORD@cache1:6380/2"
        )
    return make_celery(settings, set_as_current=True)


celery = _from_environment()


@signals.worker_process_init.connect
def _reset_engine_after_fork(**_: Any) -> None:
    # The engine is created lazily in each child; should the parent ever have made one, its
    # pooled connections must not be shared across the fork.
    celery.pystack_forget_engine()
