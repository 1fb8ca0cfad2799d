"""Items belong to one category and carry any number of tags (the Flask app's schema).

Table names are Django's defaults (items_item, items_category, items_tag, items_item_tags),
so both reference apps can share one database without touching each other's tables.
"""

from __future__ import annotations

from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Item(models.Model):
    name = models.CharField(max_length=200, db_index=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="items")
    # The automatic through table has an index on each side and a unique (item, tag) pair.
    tags = models.ManyToManyField(Tag, related_name="items", blank=True)

    def __str__(self) -> str:
        return self.name


class TaskRun(models.Model):
    """One row per summarize_items task a worker ran (POST /api/tasks): the task's visible write.

    Keyed by the Celery task id, so a redelivered task (acks late) records itself once.
    """

    task_id = models.CharField(max_length=64, unique=True)
    limit = models.PositiveIntegerField()
    items = models.PositiveIntegerField()
    worker = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.task_id
