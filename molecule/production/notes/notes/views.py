from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, request
from redis import Redis, RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from .jobs import compute_note_stats
from .models import Note, db

bp = Blueprint("notes", __name__)

VERSION = (Path(__file__).resolve().parents[1] / "VERSION").read_text().strip()
QUEUE_NAME = "notes"
KEY_PREFIX = "notes:"
_clients = {}


def _redis(config_key):
    url = current_app.config[config_key]
    if url not in _clients:
        _clients[url] = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    return _clients[url]


def cache():
    return _redis("REDIS_URL")


def queue():
    return Queue(QUEUE_NAME, connection=_redis("RQ_REDIS_URL"))


@bp.get("/")
def index():
    try:
        hits = cache().incr(KEY_PREFIX + "hits")
    except Exception:  # the cache is optional for this page
        hits = None
    return jsonify(app="notes", version=VERSION, hits=hits)


@bp.get("/health")
def health():
    checks = {}
    try:
        db.session.execute(text("SELECT 1")).scalar_one()
        checks["database"] = "ok"
    except Exception as exc:
        db.session.rollback()
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        cache().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ok else "fail", **checks), (200 if ok else 503)


@bp.post("/notes")
def create_note():
    data = request.get_json(silent=True) or {}
    body = data.get("body")
    if not isinstance(body, str) or not body.strip():
        return jsonify(error="body is required"), 400
    note = Note(body=body)
    db.session.add(note)
    db.session.commit()
    return jsonify(id=note.id), 201


@bp.get("/notes/<int:note_id>")
def get_note(note_id):
    note = db.session.get(Note, note_id)
    if note is None:
        abort(404)
    return jsonify(id=note.id, body=note.body)


@bp.post("/jobs")
def create_job():
    data = request.get_json(silent=True) or {}
    note_id = data.get("note_id")
    if not isinstance(note_id, int) or isinstance(note_id, bool):
        return jsonify(error="note_id (integer) is required"), 400
    if db.session.get(Note, note_id) is None:
        return jsonify(error="no such note"), 404
    job = queue().enqueue(compute_note_stats, note_id)
    return jsonify(job_id=job.id), 202


@bp.get("/jobs/<job_id>")
def get_job(job_id):
    try:
        job = Job.fetch(job_id, connection=_redis("RQ_REDIS_URL"))
    except NoSuchJobError:
        return jsonify(error="no such job"), 404
    status = job.get_status()
    return jsonify(status=getattr(status, "value", status), result=job.return_value())


@bp.app_errorhandler(404)
def not_found(_exc):
    return jsonify(error="not found"), 404


# What the deploy's contract asks of an app (roles/app README, "Health and dependency
# outages"): a database or Redis that does not answer is a quick 503 with Retry-After,
# not an HTML 500, so clients and the balancer can tell it from a broken node.
@bp.app_errorhandler(DBAPIError)
def database_unavailable(exc):
    # Connection failures only; a driver may report a dropped connection as a plain
    # DatabaseError (psycopg2cffi does), which SQLAlchemy flags as invalidated.
    if isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated:
        return _unavailable("database", exc)
    raise exc


@bp.app_errorhandler(RedisError)
def redis_unavailable(exc):
    return _unavailable("redis", exc)


def _unavailable(dependency, exc):
    response = jsonify(error=f"{dependency} unavailable", detail=exc.__class__.__name__)
    response.status_code = 503
    response.headers["Retry-After"] = "2"
    return response
