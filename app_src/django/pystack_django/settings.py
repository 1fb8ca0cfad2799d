"""Django settings, read from environment variables (the deploy's generic app contract).

Required outside tests: DJANGO_SECRET_KEY (or SECRET_KEY) and DATABASE_URL. Production-safe
defaults for everything else (HTTPS behind a TLS-terminating balancer, HSTS, secure cookies).
See README.md for every variable. Tests use tests/settings.py, which sets test values and
replaces the caches and the Celery transport.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import config

BASE_DIR = Path(__file__).resolve().parent.parent
env = os.environ

SECRET_KEY = config.require(
    env,
    "DJANGO_SECRET_KEY",
    "Set DJANGO_SECRET_KEY (or SECRET_KEY) to a long random string (at least 50 characters, "
    "or `manage.py check --deploy` warns; the deploy generates one per environment).",
    "SECRET_KEY",
)
DEBUG = config.env_bool(env, "DEBUG", default=False)
# The site's name as the balancer forwards it, plus the node's own names and addresses for the
# balancer's health checks. 127.0.0.1 and localhost serve the deploy's local checks.
ALLOWED_HOSTS = config.env_list(env, "DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1", "ALLOWED_HOSTS")

# What /runtime reports (same variables and meaning as the Flask app).
APP_SERVER = config.app_server(env)
APP_INTERPRETER = env.get("APP_INTERPRETER", "")
APP_RELEASE = env.get("APP_RELEASE", "") or config.release_from_path()
CACHE_TTL = config.env_int(env, "CACHE_TTL", default=30, minimum=1)

INSTALLED_APPS = [
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "items",
]

MIDDLEWARE = [
    "pystack_django.middleware.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pystack_django.urls"
WSGI_APPLICATION = "wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        # With DEBUG off Django wraps these loaders in its cached loader: templates are
        # compiled once per process.
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

# --- PostgreSQL through pgbouncer (transaction pooling) -------------------------------------
DATABASE_URL = config.require(
    env,
    "DATABASE_URL",
    "Example: postgresql://app:PASSWORD@db1:6432/app (pgbouncer port).",
)
# psycopg 3 (CPython, Pyston) binds on the server and prepares a query after
# DB_PREPARE_THRESHOLD executions (default 5; "off" for a pgbouncer without max_prepared_statements).
# Under ASGI (the deploy's PYSTACK_APP_PROTOCOL) Django serves each request's sync code in a
# thread of its own: a kept connection would outlive it unused, so none is kept (Django's advice).
_database, DATABASE_DRIVER = config.database_from_url(
    DATABASE_URL,
    prepare_threshold=config.prepare_threshold(env),
    conn_max_age=0 if env.get("PYSTACK_APP_PROTOCOL") == "asgi" else config.CONN_MAX_AGE_SECONDS,
)
DATABASES: dict[str, dict[str, Any]] = {"default": _database}

# On PyPy (psycopg2cffi) Django's backend imports `psycopg2`: the deploy installs an alias
# package that makes psycopg2cffi importable under that name.

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache and sessions --------------------------------------------------------------
# REDIS_URL: the cache instance; REDIS_DURABLE_URL: the durable one (sessions, Celery). The
# names earlier deploys used are read when the new ones are unset.
REDIS_CACHE_URL = config.first_set(env, "REDIS_URL", "REDIS_CACHE_URL")
REDIS_SESSION_URL = config.first_set(env, "REDIS_DURABLE_URL", "REDIS_SESSION_URL")
# A Redis that does not answer costs at most this long per attempt (see pystack_django/cache.py).
REDIS_OPTIONS = {"socket_connect_timeout": 2.0, "socket_timeout": 2.0, "health_check_interval": 30}

CACHES: dict[str, dict[str, Any]] = {
    # Without REDIS_URL nothing is cached (like the Flask app): every list is a MISS.
    "default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
}
if REDIS_CACHE_URL:
    CACHES["default"] = {
        "BACKEND": "pystack_django.cache.ResilientRedisCache",
        "LOCATION": REDIS_CACHE_URL,
        "KEY_PREFIX": "pystack",
        "TIMEOUT": CACHE_TTL,
        "OPTIONS": REDIS_OPTIONS,
    }
if REDIS_SESSION_URL:
    CACHES["sessions"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_SESSION_URL,
        "KEY_PREFIX": "pystack",
        "OPTIONS": REDIS_OPTIONS,
    }
    SESSION_ENGINE = "pystack_django.sessions"
    SESSION_CACHE_ALIAS = "sessions"
else:
    SESSION_ENGINE = "django.contrib.sessions.backends.db"

# cache_page (GET /cached) keys live in the "default" alias too.
CACHE_MIDDLEWARE_ALIAS = "default"
CACHE_MIDDLEWARE_KEY_PREFIX = "page"
CACHE_MIDDLEWARE_SECONDS = CACHE_TTL

# --- Celery (pystack_django/celery.py; worker: celery -A pystack_django worker) -------------
# The deploy sets CELERY_BROKER_URL and CELERY_RESULT_BACKEND (the durable Redis); without them
# they are derived from REDIS_DURABLE_URL (db 1 and 2), as in the Flask app. Unset and no durable
# Redis: POST /api/tasks answers 503 and the worker refuses to start.
CELERY_BROKER_URL = config.first_set(env, "CELERY_BROKER_URL") or config.redis_url_with_db(
    REDIS_SESSION_URL, config.CELERY_BROKER_DB
)
CELERY_RESULT_BACKEND = config.first_set(env, "CELERY_RESULT_BACKEND") or config.redis_url_with_db(
    REDIS_SESSION_URL, config.CELERY_RESULT_DB
)
# The same delivery and safety settings as the Flask app (pystack_flask/taskqueue.py).
CELERY_TASK_DEFAULT_QUEUE = "pystack_django"  # not "celery": the Flask app's workers may share the Redis
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SOFT_TIME_LIMIT = 30
CELERY_TASK_TIME_LIMIT = 60
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2.0
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Must exceed the hard time limit: an unacknowledged task goes back to the queue after it.
    "visibility_timeout": 3600,
    "socket_connect_timeout": 2.0,
    "socket_timeout": 3.0,
    "socket_keepalive": True,
    "health_check_interval": 25,
}
# Publishing: one retry on a fresh connection, then POST /api/tasks answers 503.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2.0
CELERY_REDIS_SOCKET_TIMEOUT = 3.0
CELERY_REDIS_SOCKET_KEEPALIVE = True
CELERY_REDIS_BACKEND_HEALTH_CHECK_INTERVAL = 25
# redis:// result URLs get the polling backend (no SUBSCRIBE per enqueued task in web workers).
CELERY_OVERRIDE_BACKENDS = {
    "redis": "pystack_django.celery:PollingRedisBackend",
    "rediss": "pystack_django.celery:PollingRedisBackend",
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = True
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True

# --- Static files: hashed names + staticfiles.json, served by the edge tier ------------------
# `manage.py collectstatic --noinput` (the deploy's prepare step) writes <release>/staticfiles/,
# which the edge serves under /static/.
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.get("STATIC_ROOT", "") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

# --- HTTPS behind the balancer (see README: check --deploy) ---------------------------------
# Production defaults: the edge terminates TLS, sets X-Forwarded-Proto and redirects to HTTPS.
# Each can be overridden from the environment (a plain-HTTP lab: SESSION_COOKIE_SECURE=false...).
SECURE_PROXY_SSL_HEADER = config.proxy_ssl_header(env)
SECURE_SSL_REDIRECT = config.env_bool(env, "SECURE_SSL_REDIRECT", default=False)
# Health and runtime probes come from the balancer and the deploy over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^runtime$"]
SECURE_HSTS_SECONDS = config.env_int(env, "SECURE_HSTS_SECONDS", default=31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = config.env_bool(env, "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = config.env_bool(env, "SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = config.env_bool(env, "SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = config.env_bool(env, "CSRF_COOKIE_SECURE", default=True)
X_FRAME_OPTIONS = "DENY"

SILENCED_SYSTEM_CHECKS: list[str] = []
if not SECURE_SSL_REDIRECT:
    # security.W008 (SECURE_SSL_REDIRECT off): the balancer redirects http:// to https://;
    # the app also answers plain-HTTP probes (balancer health checks, the deploy's checks on
    # 127.0.0.1), which a redirect would break. Set SECURE_SSL_REDIRECT=true to have Django do it.
    SILENCED_SYSTEM_CHECKS.append("security.W008")

# --- Misc ------------------------------------------------------------------------------------
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False
LANGUAGE_CODE = "en-us"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # gunicorn's format: warnings (Redis down) and request errors land in the journal.
        "plain": {"format": "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"},
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "pystack_django": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "items": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
