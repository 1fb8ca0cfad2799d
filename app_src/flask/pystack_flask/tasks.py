"""Celery tasks. Shared tasks: registered on every app taskqueue.make_celery builds.

Arguments and results are JSON (the only serializer accepted). Each task runs its queries in
one short transaction through the worker's own engine (pgbouncer transaction-mode rules).
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any

from celery import Task, shared_task
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from . import items
from .cache import describe_error
from .models import Category, Item, Tag
from .runtime import interpreter_and_jit

if TYPE_CHECKING:
    from .taskqueue import PystackCelery

SUMMARIZE_ITEMS = "pystack_flask.summarize_items"
SUMMARY_DEFAULT_LIMIT = 50
SUMMARY_MAX_LIMIT = 500


class TaskFailed(RuntimeError):
    """What a task stores as its failure: one short line, rebuilt as is by the web app.

    Celery stores exceptions as type + arguments and rebuilds them where the result is read;
    many (SQLAlchemy's, psycopg2's) cannot be rebuilt from their arguments and come back as an
    opaque Exception. The full traceback is in the worker's log.
    """


def summarize(engine: Engine, limit: int) -> dict[str, Any]:
    """Counts over the first `limit` items (clamped to 1..500) and over the whole tables.

    Three statements in one read-only transaction: the eager-loading item list (two) and one
    SELECT of the three table counts.
    """
    limit = max(1, min(SUMMARY_MAX_LIMIT, int(limit)))
    started = time.perf_counter()
    counts = select(
        *(select(func.count()).select_from(model).scalar_subquery() for model in (Item, Category, Tag))
    )
    with Session(engine) as db:
        rows = items.list_items(db, limit)
        total_items, total_categories, total_tags = db.execute(counts).one()
    interpreter, jit = interpreter_and_jit()
    return {
        "limit": limit,
        "sampled": len(rows),
        "sample_categories": len({row["category"] for row in rows}),
        "sample_tags": len({tag for row in rows for tag in row["tags"]}),
        "sample_tag_links": sum(len(row["tags"]) for row in rows),
        "items": total_items,
        "categories": total_categories,
        "tags": total_tags,
        "worker": socket.gethostname(),
        "interpreter": interpreter,
        "jit": jit,
        "pid": os.getpid(),
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
    }


@shared_task(bind=True, name=SUMMARIZE_ITEMS)
def summarize_items(self: Task, limit: int = SUMMARY_DEFAULT_LIMIT) -> dict[str, Any]:
    app: PystackCelery = self.app
    try:
        return summarize(app.pystack_engine(), limit)
    except Exception as exc:
        raise TaskFailed(describe_error(exc)) from exc
