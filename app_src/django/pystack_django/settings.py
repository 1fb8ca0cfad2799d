"""Django settings, read from environment variables (the same names as the Flask app).

Required outside tests: SECRET_KEY and DATABASE_URL. See README.md for every variable.
Tests use tests/settings.py, which sets test values and replaces the caches.
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
    "SECRET_KEY",
    "Set the SECRET_KEY environment variable to a long random string (at least 50 characters, "
    "or `manage.py check --deploy` warns; the deploy generates one per environment).",
)
DEBUG = config.env_bool(env, "DEBUG", default=False)
# The site's name as the balancer forwards it, plus the node's own address for the balancer's
# health checks. 127.0.0.1 and localhost serve the deploy's local checks.
ALLOWED_HOSTS = config.env_list(env, "ALLOWED_HOSTS", "localhost,127.0.0.1")

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
    "Example: postgresql+psycopg://app:PASSWORD@db1:6432/app (pgbouncer port).",
)
# psycopg 3 (CPython, Pyston) binds on the server and prepares a query after
# DB_PREPARE_THRESHOLD executions (default 5; "off" for a pgbouncer without max_prepared_statements).
_database, DATABASE_DRIVER = config.database_from_url(
    DATABASE_URL, prepare_threshold=config.prepare_threshold(env)
)
DATABASES: dict[str, dict[str, Any]] = {"default": _database}

if DATABASE_DRIVER == "psycopg2cffi":
    # psycopg2 (a CPython extension) does not import on PyPy: register the cffi port under the
    # name psycopg2 before Django loads its PostgreSQL backend (at the first connection).
    from .psycopg2cffi_compat import register

    try:
        register()
    except ImportError:
        raise config.ConfigError(
            "DATABASE_URL needs psycopg2cffi (PyPy): install requirements-pypy.txt, or use "
            "postgresql+psycopg:// with requirements-cpython.txt on CPython"
        ) from None

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache and sessions --------------------------------------------------------------
REDIS_CACHE_URL = env.get("REDIS_CACHE_URL", "")
REDIS_SESSION_URL = env.get("REDIS_SESSION_URL", "")
# A Redis that does not answer costs at most this long per attempt (see pystack_django/cache.py).
REDIS_OPTIONS = {"socket_connect_timeout": 2.0, "socket_timeout": 2.0, "health_check_interval": 30}

CACHES: dict[str, dict[str, Any]] = {
    # Without REDIS_CACHE_URL nothing is cached (like the Flask app): every list is a MISS.
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

# --- Static files: hashed names + staticfiles.json, served by the edge tier ------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.get("STATIC_ROOT", "") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

# --- HTTPS behind the balancer (see README: check --deploy) ---------------------------------
SECURE_PROXY_SSL_HEADER = config.proxy_ssl_header(env)
SECURE_SSL_REDIRECT = config.env_bool(env, "SECURE_SSL_REDIRECT", default=False)
# Health and runtime probes come from the balancer and the deploy over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^runtime$"]
SECURE_HSTS_SECONDS = config.env_int(env, "SECURE_HSTS_SECONDS", default=0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = config.env_bool(env, "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = config.env_bool(env, "SECURE_HSTS_PRELOAD", default=False)
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
