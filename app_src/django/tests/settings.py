"""Test settings: the production settings module with SQLite and fakeredis instead of servers.

The environment is fixed here (not inherited from the shell), so a developer's DATABASE_URL
or REDIS_* can never point the tests at a real server. Tests that need other values use
pytest-django's `settings` fixture or run manage.py in a subprocess (test_settings.py).
"""

from __future__ import annotations

import os

import fakeredis

for _name in (
    "REDIS_URL",
    "REDIS_DURABLE_URL",
    "REDIS_CACHE_URL",
    "REDIS_SESSION_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "ALLOWED_HOSTS",
    "APP_SERVER",
    "APP_RELEASE",
    "STATIC_ROOT",
):
    os.environ.pop(_name, None)
os.environ.update(SECRET_KEY="test-secret", DATABASE_URL="sqlite://", CACHE_TTL="30")

from pystack_django.settings import *  # noqa: E402, F403

# One in-memory Redis per test (tests/conftest.py flushes it); the "redis://" URL is only parsed.
FAKE_REDIS_SERVER = fakeredis.FakeServer()
FAKE_REDIS_OPTIONS = {"connection_class": fakeredis.FakeRedisConnection, "server": FAKE_REDIS_SERVER}
CACHES = {
    "default": {
        "BACKEND": "pystack_django.cache.ResilientRedisCache",
        "LOCATION": "redis://fake-cache:6379/0",
        "KEY_PREFIX": "pystack",
        "TIMEOUT": CACHE_TTL,  # noqa: F405
        "OPTIONS": FAKE_REDIS_OPTIONS,
    },
}
# Tests render {% static %} without running collectstatic first (test_static.py runs it).
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tasks run in the test process (eagerly, results kept in memory): no broker needed. Tests that
# need a broker or none at all change celery_app.conf (tests/test_tasks.py).
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_STORE_EAGER_RESULT = True
