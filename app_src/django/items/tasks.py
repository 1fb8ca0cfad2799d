"""Celery tasks (found by app.autodiscover_tasks(), see pystack_django/celery.py).

summarize_items is the Flask app's task of the same name, plus one write: it records its run in
items_taskrun (one row per task id, so a redelivered task does not count twice). Arguments and
results are JSON; the queries and the write run in one short transaction (pgbouncer transaction
pooling).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from celery import Task, shared_task
from django.db import transaction

from pystack_django.cache import describe_error
from pystack_django.runtime import interpreter_and_jit

from . import services
from .models import Category, Item, Tag, TaskRun

SUMMARIZE_ITEMS = "pystack_django.summarize_items"
SUMMARY_DEFAULT_LIMIT = 50
SUMMARY_MAX_LIMIT = 500


class TaskFailed(RuntimeError):
    """What a task stores as its failure: one short line (the traceback is in the worker log).

    Celery rebuilds stored exceptions from their type and arguments, which many driver
    exceptions do not survive.
    """


def summarize(limit: int, task_id: str) -> dict[str, Any]:
    """Counts over the first `limit` items (clamped to 1..500) and the tables; records the run."""
    limit = max(1, min(SUMMARY_MAX_LIMIT, int(limit)))
    started = time.perf_counter()
    worker = socket.gethostname()
    with transaction.atomic():
        rows = services.list_items(limit)
        total_items = Item.objects.count()
        total_categories = Category.objects.count()
        total_tags = Tag.objects.count()
        # INSERT ... ON CONFLICT DO NOTHING: a redelivered task records itself once.
        TaskRun.objects.bulk_create(
            [TaskRun(task_id=task_id, limit=limit, items=total_items, worker=worker[:255])],
            ignore_conflicts=True,
        )
        runs = TaskRun.objects.count()
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
        "runs": runs,
        "worker": worker,
        "interpreter": interpreter,
        "jit": jit,
        "pid": os.getpid(),
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
    }


@shared_task(bind=True, name=SUMMARIZE_ITEMS)
def summarize_items(self: Task, limit: int = SUMMARY_DEFAULT_LIMIT) -> dict[str, Any]:
    try:
        return summarize(limit, str(self.request.id or ""))
    except Exception as exc:
        raise TaskFailed(describe_error(exc)) from exc
