"""Item queries and batched writes. Each function runs inside a caller-provided Session."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, joinedload, selectinload

from .models import Category, Item, Tag, item_tags

SEED_CATEGORIES = 12
SEED_TAGS = 24
SEED_PREFIX = "demo-item-"
# Fixed key for pg_advisory_xact_lock: a transaction-scoped lock, safe under pgbouncer
# transaction pooling (a session-level advisory lock would not be).
SEED_LOCK_KEY = 7_246_001
CHUNK = 1000


class ValidationError(ValueError):
    pass


def list_items(session: Session, limit: int) -> list[dict[str, Any]]:
    """Two statements whatever `limit` is: items joined to their category, then all their tags."""
    stmt = (
        select(Item)
        .options(joinedload(Item.category), selectinload(Item.tags))
        .order_by(Item.id)
        .limit(limit)
    )
    return [
        {
            "id": item.id,
            "name": item.name,
            "category": item.category.name,
            "tags": [tag.name for tag in item.tags],
        }
        for item in session.scalars(stmt)
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


def _insert_ignoring_duplicates(
    session: Session, model: type[Category] | type[Tag], names: Iterable[str]
) -> None:
    rows = [{"name": name} for name in sorted(set(names))]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(model).on_conflict_do_nothing(index_elements=["name"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(model).on_conflict_do_nothing(index_elements=["name"])
    else:
        existing = set(session.scalars(select(model.name).where(model.name.in_([r["name"] for r in rows]))))
        rows = [r for r in rows if r["name"] not in existing]
        stmt = insert(model)
    if rows:
        session.execute(stmt, rows)


def _ids_by_name(session: Session, model: type[Category] | type[Tag], names: Iterable[str]) -> dict[str, int]:
    wanted = sorted(set(names))
    if not wanted:
        return {}
    return dict(session.execute(select(model.name, model.id).where(model.name.in_(wanted))).all())


def bulk_insert_items(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert items with their categories and tags in a handful of batched statements.

    Categories and tags: one multi-row INSERT ... ON CONFLICT DO NOTHING each, then one SELECT
    for their ids. Items: one executemany INSERT with RETURNING in parameter order (SQLAlchemy's
    insertmanyvalues batches it). Item/tag links: one executemany INSERT.
    """
    _insert_ignoring_duplicates(session, Category, (row["category"] for row in rows))
    _insert_ignoring_duplicates(session, Tag, (tag for row in rows for tag in row["tags"]))
    category_ids = _ids_by_name(session, Category, (row["category"] for row in rows))
    tag_ids = _ids_by_name(session, Tag, (tag for row in rows for tag in row["tags"]))

    created = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        item_ids = session.scalars(
            insert(Item).returning(Item.id, sort_by_parameter_order=True),
            [{"name": row["name"], "category_id": category_ids[row["category"]]} for row in chunk],
        ).all()
        links = [
            {"item_id": item_id, "tag_id": tag_ids[tag]}
            for item_id, row in zip(item_ids, chunk)
            for tag in row["tags"]
        ]
        if links:
            session.execute(insert(item_tags), links)
        created += len(item_ids)
    return created


def _seed_row(number: int) -> dict[str, Any]:
    tags = sorted({f"tag-{(number * k) % SEED_TAGS:02d}" for k in (1, 7, 13)})
    return {
        "name": f"{SEED_PREFIX}{number:06d}",
        "category": f"category-{number % SEED_CATEGORIES:02d}",
        "tags": tags,
    }


def seed_items(session: Session, count: int) -> dict[str, int]:
    """Make sure demo items 1..count exist (idempotent: only the missing ones are inserted)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEED_LOCK_KEY})
    existing = set(
        session.scalars(select(Item.name).where(Item.name.startswith(SEED_PREFIX, autoescape=True)))
    )
    missing = [row for row in map(_seed_row, range(1, count + 1)) if row["name"] not in existing]
    created = bulk_insert_items(session, missing) if missing else 0
    return {
        "requested": count,
        "created": created,
        "items": session.scalar(select(func.count()).select_from(Item)) or 0,
        "categories": session.scalar(select(func.count()).select_from(Category)) or 0,
        "tags": session.scalar(select(func.count()).select_from(Tag)) or 0,
    }
