"""HTTP endpoints. The JSON shapes here are a contract with the deploy tests and benchmarks."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import kombu.exceptions
import redis
from flask import Blueprint, Response, jsonify, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from . import items, page
from .cache import describe_error
from .errors import unavailable
from .runtime import runtime_info
from .state import state
from .tasks import SUMMARIZE_ITEMS, SUMMARY_DEFAULT_LIMIT, SUMMARY_MAX_LIMIT, TaskFailed

log = logging.getLogger(__name__)
bp = Blueprint("pystack", __name__)

ITEMS_DEFAULT_LIMIT = 50
ITEMS_MAX_LIMIT = 500
ITEMS_MAX_POST = 5000
SEED_DEFAULT = 1000
SEED_MAX = 100_000
PAGE_ROWS = 500
PAGE_MAX_ROWS = 5000
# Bumped on every write; cached lists live under the current generation, so one INCR
# invalidates every cached limit at once and old entries simply expire.
ITEMS_GENERATION_KEY = "pystack:items:gen"
# Celery task ids are UUIDs; anything else is not worth a round trip to Redis.
TASK_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")
# What a broker or result backend that is down or refusing raises (kombu wraps most of it).
QUEUE_ERRORS = (kombu.exceptions.KombuError, redis.RedisError, OSError)


def _int_arg(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    return max(minimum, min(maximum, value))


class BadRequest(Exception):
    pass


@bp.errorhandler(BadRequest)
def _bad_request(exc: BadRequest) -> ResponseReturnValue:
    return jsonify(error=str(exc)), 400


@bp.errorhandler(items.ValidationError)
def _invalid(exc: items.ValidationError) -> ResponseReturnValue:
    return jsonify(error=str(exc)), 400


@bp.get("/")
def index() -> ResponseReturnValue:
    return render_template("index.html", release=state().settings.app_release)


@bp.get("/runtime")
def runtime() -> ResponseReturnValue:
    app_state = state()
    settings = app_state.settings
    driver = app_state.engine.url.get_driver_name()
    return jsonify(runtime_info(settings.app_server, settings.app_interpreter, settings.app_release, driver))


@bp.get("/livez")
def livez() -> ResponseReturnValue:
    """Liveness: this process serves requests. Touches no shared dependency, so a database or
    Redis that blinks never takes every node out of the balancer."""
    response = jsonify(status="alive")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Readiness: the dependencies answer too (the deploy asks it before and after a switch)."""
    app_state = state()
    checks: dict[str, str] = {}
    try:
        with app_state.engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()
        checks["postgresql"] = "ok"
    except Exception as exc:  # any failure is the answer, not an error of the health check
        checks["postgresql"] = describe_error(exc)
    checks["redis"] = app_state.cache.ping()
    healthy = all(value in ("ok", "disabled") for value in checks.values())
    response = jsonify(status="ok" if healthy else "fail", checks=checks)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/items")
def list_items() -> ResponseReturnValue:
    app_state = state()
    limit = _int_arg("limit", ITEMS_DEFAULT_LIMIT, 1, ITEMS_MAX_LIMIT)
    cache = app_state.cache

    key = ""
    if cache.enabled:
        generation = cache.get(ITEMS_GENERATION_KEY) or b"0"
        key = f"pystack:items:{generation.decode()}:{limit}"
        body = cache.get(key)
        if body is not None:
            return _json_bytes(body, "HIT")

    with app_state.sessions() as db:
        rows = items.list_items(db, limit)
    body = json.dumps(rows, separators=(",", ":")).encode()
    if key:
        cache.set(key, body, app_state.settings.cache_ttl)
    return _json_bytes(body, "MISS")


def _json_bytes(body: bytes, cache_status: str) -> Response:
    response = Response(body, mimetype="application/json")
    response.headers["X-Cache"] = cache_status
    return response


@bp.post("/api/items")
def create_items() -> ResponseReturnValue:
    app_state = state()
    rows = items.validate_items(request.get_json(silent=True), ITEMS_MAX_POST)
    with app_state.sessions.begin() as db:
        created = items.bulk_insert_items(db, rows)
    app_state.cache.incr(ITEMS_GENERATION_KEY)
    return jsonify(created=created), 201


@bp.post("/api/seed")
def seed() -> ResponseReturnValue:
    app_state = state()
    count = _int_arg("n", SEED_DEFAULT, 0, SEED_MAX)
    with app_state.sessions.begin() as db:
        counts = items.seed_items(db, count)
    if counts["created"]:
        app_state.cache.incr(ITEMS_GENERATION_KEY)
    return jsonify(counts)


@bp.get("/page")
def cpu_page() -> ResponseReturnValue:
    rows = page.compute_rows(_int_arg("rows", PAGE_ROWS, 1, PAGE_MAX_ROWS))
    return render_template("page.html", rows=rows)


@bp.get("/api/session")
def session_visits() -> ResponseReturnValue:
    visits: Any = session.get("visits", 0)
    session["visits"] = int(visits) + 1
    settings = state().settings
    backend = "redis" if settings.redis_session_url or settings.redis_session_client is not None else "cookie"
    return jsonify(visits=session["visits"], backend=backend)


@bp.post("/api/tasks")
def enqueue_task() -> ResponseReturnValue:
    app_state = state()
    limit = _int_arg("limit", SUMMARY_DEFAULT_LIMIT, 1, SUMMARY_MAX_LIMIT)
    celery = app_state.celery
    if not app_state.settings.celery_broker_url:
        return unavailable("task broker not configured: set CELERY_BROKER_URL (or REDIS_DURABLE_URL)")
    try:
        result = celery.tasks[SUMMARIZE_ITEMS].apply_async(args=(limit,))
    except QUEUE_ERRORS as exc:
        log.warning("enqueue failed, task broker %s: %s", celery.broker_display, describe_error(exc))
        return unavailable(
            f"task broker unavailable ({celery.broker_display}): {describe_error(exc)}",
            broker=celery.broker_display,
        )
    response = jsonify(id=result.id)
    response.status_code = 202
    response.headers["Location"] = url_for("pystack.task_status", task_id=result.id)
    return response


@bp.get("/api/tasks/<task_id>")
def task_status(task_id: str) -> ResponseReturnValue:
    app_state = state()
    if not TASK_ID.fullmatch(task_id):
        return jsonify(error="invalid task id"), 404
    if not app_state.settings.celery_result_backend:
        return unavailable("result backend not configured: set CELERY_RESULT_BACKEND (or REDIS_DURABLE_URL)")
    result = app_state.celery.AsyncResult(task_id)
    try:
        task_state = result.state
        # Ready results are cached by AsyncResult: reading them costs no second round trip.
        value: Any = result.result if task_state in ("SUCCESS", "FAILURE") else None
    except QUEUE_ERRORS as exc:
        log.warning("task status failed, result backend: %s", describe_error(exc))
        return unavailable(f"result backend unavailable: {describe_error(exc)}")
    if task_state == "FAILURE":
        # The exception Celery stored, as one short line; the traceback stays in the worker log.
        if isinstance(value, TaskFailed):
            value = str(value)[:300]
        elif isinstance(value, BaseException):  # time limit, lost worker, ...
            value = describe_error(value)
        else:
            value = str(value)[:300]
    response = jsonify(id=task_id, state=task_state, result=value)
    response.headers["Cache-Control"] = "no-store"
    return response
