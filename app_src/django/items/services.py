"""Item queries and batched writes (the Flask app's items.py, with the Django ORM).

Writers run inside transaction.atomic() (the views open it): one short transaction each,
which is what pgbouncer's transaction pooling hands to one server connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection
from django.db.models import Prefetch

from .models import Category, Item, Tag

SEED_CATEGORIES = 12
SEED_TAGS = 24
SEED_PREFIX = "demo-item-"
# Fixed key for pg_advisory_xact_lock: a transaction-scoped lock, safe under pgbouncer
# transaction pooling (a session-level advisory lock would not be).
SEED_LOCK_KEY = 7_246_001
CHUNK = 1000
ItemTag = Item.tags.through


class ValidationError(ValueError):
    pass


def list_items(limit: int) -> list[dict[str, Any]]:
    """Two statements whatever `limit` is: items joined to their category, then all their tags."""
    queryset = (
        Item.objects.select_related("category")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.order_by("name")))
        .order_by("id")[:limit]
    )
    return [
        {
            "id": item.id,
            "name": item.name,
            "category": item.category.name,
            "tags": [tag.name for tag in item.tags.all()],
        }
        for item in queryset
    ]


def validate_items(payload: Any, max_items: int) -> list[dict[str, Any]]:
    """Check a POST /api/items body; return clean rows {'name', 'category', 'tags'}."""
    if not isinstance(payload, dict) or not isinstance(payload.get("items"), list):
        raise ValidationError('body must be a JSON object {"items": [...]}')
    raw_items = payload["items"]
    if not raw_items:
        raise ValidationError("items must not be empty")
    if len(raw_items) > max_items:
        raise ValidationError(f"at most {max_items} items per request")
    rows = []
    for index, raw in enumerate(raw_items):
        where = f"items[{index}]"
        if not isinstance(raw, dict):
            raise ValidationError(f"{where} must be an object")
        name, category, tags = raw.get("name"), raw.get("category"), raw.get("tags", [])
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 200:
            raise ValidationError(f"{where}.name must be a non-empty string of at most 200 characters")
        if not isinstance(category, str) or not 0 < len(category.strip()) <= 100:
            raise ValidationError(f"{where}.category must be a non-empty string of at most 100 characters")
        if not isinstance(tags, list) or len(tags) > 20:
            raise ValidationError(f"{where}.tags must be a list of at most 20 strings")
        clean_tags = []
        for tag in tags:
            if not isinstance(tag, str) or not 0 < len(tag.strip()) <= 50:
                raise ValidationError(
                    f"{where}.tags entries must be non-empty strings of at most 50 characters"
                )
            clean_tags.append(tag.strip())
        rows.append({"name": name.strip(), "category": category.strip(), "tags": sorted(set(clean_tags))})
    return rows


def _ids_by_name(model: type[Category] | type[Tag], names: Iterable[str]) -> dict[str, int]:
    """Insert the missing names (one INSERT ... ON CONFLICT DO NOTHING), then read all ids."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    model.objects.bulk_create([model(name=name) for name in wanted], ignore_conflicts=True)
    return dict(model.objects.filter(name__in=wanted).values_list("name", "id"))


def bulk_insert_items(rows: Sequence[dict[str, Any]]) -> int:
    """Insert items with their categories and tags in a handful of batched statements.

    Categories and tags: one multi-row INSERT ... ON CONFLICT DO NOTHING each, then one SELECT
    for their ids. Items: one multi-row INSERT ... RETURNING id per CHUNK rows (bulk_create
    sets the primary keys). Item/tag links: one multi-row INSERT per CHUNK.
    """
    category_ids = _ids_by_name(Category, (row["category"] for row in rows))
    tag_ids = _ids_by_name(Tag, (tag for row in rows for tag in row["tags"]))

    items = Item.objects.bulk_create(
        [Item(name=row["name"], category_id=category_ids[row["category"]]) for row in rows],
        batch_size=CHUNK,
    )
    links = [
        ItemTag(item_id=item.pk, tag_id=tag_ids[tag]) for item, row in zip(items, rows) for tag in row["tags"]
    ]
    if links:
        ItemTag.objects.bulk_create(links, batch_size=CHUNK)
    return len(items)


def _seed_row(number: int) -> dict[str, Any]:
    tags = sorted({f"tag-{(number * k) % SEED_TAGS:02d}" for k in (1, 7, 13)})
    return {
        "name": f"{SEED_PREFIX}{number:06d}",
        "category": f"category-{number % SEED_CATEGORIES:02d}",
        "tags": tags,
    }


def seed_items(count: int) -> dict[str, int]:
    """Make sure demo items 1..count exist (idempotent: only the missing ones are inserted)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEED_LOCK_KEY])
    existing = set(Item.objects.filter(name__startswith=SEED_PREFIX).values_list("name", flat=True))
    missing = [row for row in map(_seed_row, range(1, count + 1)) if row["name"] not in existing]
    created = bulk_insert_items(missing) if missing else 0
    return {
        "requested": count,
        "created": created,
        "items": Item.objects.count(),
        "categories": Category.objects.count(),
        "tags": Tag.objects.count(),
    }
