"""ORM models: items belong to one category and carry any number of tags."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Annotations here are evaluated by SQLAlchemy at class creation, also on Python 3.9:
# keep them free of `X | None` (no column in this schema is nullable anyway).


class Base(DeclarativeBase):
    pass


item_tags = Table(
    "item_tags",
    Base.metadata,
    Column("item_id", ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_item_tags_tag_id", "tag_id"),
)


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), index=True)

    category: Mapped[Category] = relationship(lazy="raise")
    # lazy="raise": touching a relationship that the query did not load eagerly is a bug
    # (an N+1 in the making), so it fails loudly instead of issuing one query per row.
    tags: Mapped[list[Tag]] = relationship(secondary=item_tags, order_by=Tag.name, lazy="raise")
