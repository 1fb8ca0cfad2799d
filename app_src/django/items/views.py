"""HTTP endpoints. The JSON shapes are the Flask app's contract (deploy tests and benchmarks)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import kombu.exceptions
import redis
from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from kombu.utils.url import maybe_sanitize_url

from pystack_django import page
from pystack_django.cache import ResilientRedisCache, describe_error
from pystack_django.celery import app as celery_app
from pystack_django.errors import unavailable
from pystack_django.runtime import runtime_info

from . import services
from .models import Category
from .tasks import SUMMARIZE_ITEMS, SUMMARY_DEFAULT_LIMIT, SUMMARY_MAX_LIMIT, TaskFailed

log = logging.getLogger(__name__)

ITEMS_DEFAULT_LIMIT = 50
ITEMS_MAX_LIMIT = 500
ITEMS_MAX_POST = 5000
SEED_DEFAULT = 1000
SEED_MAX = 100_000
PAGE_ROWS = 500
PAGE_MAX_ROWS = 5000
# Bumped on every write; cached lists (and the index sidebar) live under the current
# generation, so one INCR invalidates them all at once and old entries simply expire.
ITEMS_GENERATION_KEY = "items:gen"
# Celery task ids are UUIDs; anything else is not worth a round trip to Redis.
TASK_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")
# What a broker or result backend that is down or refusing raises (kombu wraps most of it).
QUEUE_ERRORS = (kombu.exceptions.KombuError, redis.RedisError, OSError)


class BadRequest(Exception):
    pass


def _json(data: Any, status: int = 200) -> JsonResponse:
    # Compact separators, as Flask's jsonify sends them.
    return JsonResponse(data, status=status, safe=False, json_dumps_params={"separators": (",", ":")})


def _int_arg(request: HttpRequest, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    return max(minimum, min(maximum, value))


def _generation() -> str:
    raw = caches["default"].get(ITEMS_GENERATION_KEY)
    return str(raw if raw is not None else 0)


def _invalidate_items() -> None:
    cache = caches["default"]
    if isinstance(cache, ResilientRedisCache):
        cache.bump(ITEMS_GENERATION_KEY)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    # A lazy QuerySet: it runs only when the {% cache %} fragment around it is rendered,
    # i.e. on a fragment-cache miss.
    categories = Category.objects.order_by("name").values_list("name", flat=True)
    context = {
        "release": settings.APP_RELEASE,
        "categories": categories,
        "generation": _generation(),
        "fragment_ttl": settings.CACHE_TTL,
    }
    return render(request, "items/index.html", context)


@require_GET
def runtime(request: HttpRequest) -> HttpResponse:
    return _json(
        runtime_info(
            settings.APP_SERVER, settings.APP_INTERPRETER, settings.APP_RELEASE, settings.DATABASE_DRIVER
        )
    )


@require_GET
def livez(request: HttpRequest) -> HttpResponse:
    """Liveness: this process serves requests. Touches no shared dependency, so a database or
    Redis that blinks never takes every node out of the balancer."""
    response = _json({"status": "alive"})
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Readiness: the dependencies answer too (the deploy asks it before and after a switch)."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["postgresql"] = "ok"
    except Exception as exc:  # any failure is the answer, not an error of the health check
        checks["postgresql"] = describe_error(exc)
    cache = caches["default"]
    checks["redis"] = cache.ping() if isinstance(cache, ResilientRedisCache) else "disabled"
    healthy = all(value in ("ok", "disabled") for value in checks.values())
    response = _json({"status": "ok" if healthy else "fail", "checks": checks}, 200 if healthy else 503)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt  # a JSON API for benchmarks and scripts: no cookie-authenticated browser forms
@require_http_methods(["GET", "POST"])
def items_collection(request: HttpRequest) -> HttpResponse:
    try:
        if request.method == "POST":
            return _create_items(request)
        return _list_items(request)
    except (BadRequest, services.ValidationError) as exc:
        return _json({"error": str(exc)}, 400)


def _list_items(request: HttpRequest) -> HttpResponse:
    limit = _int_arg(request, "limit", ITEMS_DEFAULT_LIMIT, 1, ITEMS_MAX_LIMIT)
    cache = caches["default"]
    enabled = isinstance(cache, ResilientRedisCache)

    key = ""
    if enabled:
        key = f"items:{_generation()}:{limit}"
        body = cache.get(key)
        if body is not None:
            return _json_bytes(body, "HIT")

    body = json.dumps(services.list_items(limit), separators=(",", ":")).encode()
    if key:
        cache.set(key, body, settings.CACHE_TTL)
    return _json_bytes(body, "MISS")


def _json_bytes(body: bytes, cache_status: str) -> HttpResponse:
    response = HttpResponse(body, content_type="application/json")
    response["X-Cache"] = cache_status
    return response


def _create_items(request: HttpRequest) -> HttpResponse:
    try:
        payload = json.loads(request.body or b"null")
    except ValueError:
        payload = None
    rows = services.validate_items(payload, ITEMS_MAX_POST)
    with transaction.atomic():
        created = services.bulk_insert_items(rows)
    _invalidate_items()
    return _json({"created": created}, 201)


@csrf_exempt
@require_POST
def seed(request: HttpRequest) -> HttpResponse:
    try:
        count = _int_arg(request, "n", SEED_DEFAULT, 0, SEED_MAX)
    except BadRequest as exc:
        return _json({"error": str(exc)}, 400)
    with transaction.atomic():
        counts = services.seed_items(count)
    if counts["created"]:
        _invalidate_items()
    return _json(counts)


@require_GET
def cpu_page(request: HttpRequest) -> HttpResponse:
    try:
        rows = _int_arg(request, "rows", PAGE_ROWS, 1, PAGE_MAX_ROWS)
    except BadRequest as exc:
        return _json({"error": str(exc)}, 400)
    return render(request, "items/page.html", {"rows": page.compute_rows(rows)})


@require_GET
def cached_page(request: HttpRequest) -> HttpResponse:
    """/page with its default rows, cached whole by cache_page (see urls.py)."""
    return render(request, "items/page.html", {"rows": page.compute_rows(PAGE_ROWS)})


@require_GET
def session_visits(request: HttpRequest) -> HttpResponse:
    visits = int(request.session.get("visits", 0)) + 1
    request.session["visits"] = visits
    backend = "redis" if settings.SESSION_ENGINE == "pystack_django.sessions" else "db"
    return _json({"visits": visits, "backend": backend})


def _broker_display() -> str:
    """The broker URL without its password, for error messages."""
    return str(maybe_sanitize_url(settings.CELERY_BROKER_URL or "(not configured)"))


@csrf_exempt
@require_POST
def enqueue_task(request: HttpRequest) -> HttpResponse:
    """POST /api/tasks?limit=N: the Flask app's endpoint, same answers (202 {"id"}, 400, 503)."""
    try:
        limit = _int_arg(request, "limit", SUMMARY_DEFAULT_LIMIT, 1, SUMMARY_MAX_LIMIT)
    except BadRequest as exc:
        return _json({"error": str(exc)}, 400)
    if not settings.CELERY_BROKER_URL:
        return unavailable("task broker not configured: set CELERY_BROKER_URL (or REDIS_DURABLE_URL)")
    try:
        result = celery_app.tasks[SUMMARIZE_ITEMS].apply_async(args=(limit,))
    except QUEUE_ERRORS as exc:
        broker = _broker_display()
        log.warning("enqueue failed, task broker %s: %s", broker, describe_error(exc))
        return unavailable(f"task broker unavailable ({broker}): {describe_error(exc)}", broker=broker)
    response = _json({"id": result.id}, 202)
    response["Location"] = reverse("task", args=[result.id])
    return response


@require_GET
def task_status(request: HttpRequest, task_id: str) -> HttpResponse:
    """GET /api/tasks/<id>: {"id", "state", "result"}, as the Flask app answers."""
    if not TASK_ID.fullmatch(task_id):
        return _json({"error": "invalid task id"}, 404)
    if not settings.CELERY_RESULT_BACKEND:
        return unavailable("result backend not configured: set CELERY_RESULT_BACKEND (or REDIS_DURABLE_URL)")
    result = celery_app.AsyncResult(task_id)
    try:
        task_state = result.state
        # Ready results are cached by AsyncResult: reading them costs no second round trip.
        value: Any = result.result if task_state in ("SUCCESS", "FAILURE") else None
    except QUEUE_ERRORS as exc:
        log.warning("task status failed, result backend: %s", describe_error(exc))
        return unavailable(f"result backend unavailable: {describe_error(exc)}")
    if task_state == "FAILURE":
        # The exception Celery stored, as one short line; the traceback stays in the worker log.
        if isinstance(value, BaseException) and not isinstance(value, TaskFailed):
            value = describe_error(value)  # time limit, lost worker, ...
        else:
            value = str(value)[:300]
    response = _json({"id": task_id, "state": task_state, "result": value})
    response["Cache-Control"] = "no-store"
    return response
