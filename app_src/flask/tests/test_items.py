from __future__ import annotations

from typing import Any

import fakeredis
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from pystack_flask.state import state
from pystack_flask.views import ITEMS_GENERATION_KEY

from .conftest import StatementCounter, make_app


def post_items(client: FlaskClient, items: list[dict[str, Any]]) -> Any:
    return client.post("/api/items", json={"items": items})


SAMPLE = [
    {"name": "kettle", "category": "kitchen", "tags": ["steel", "electric"]},
    {"name": "pan", "category": "kitchen", "tags": ["steel"]},
    {"name": "lamp", "category": "living", "tags": []},
]


def test_bulk_insert_and_list(client: FlaskClient) -> None:
    response = post_items(client, SAMPLE)
    assert response.status_code == 201
    assert response.get_json() == {"created": 3}

    data = client.get("/api/items?limit=10").get_json()
    assert data == [
        {"id": 1, "name": "kettle", "category": "kitchen", "tags": ["electric", "steel"]},
        {"id": 2, "name": "pan", "category": "kitchen", "tags": ["steel"]},
        {"id": 3, "name": "lamp", "category": "living", "tags": []},
    ]


def test_bulk_insert_is_batched(client: FlaskClient, statements: StatementCounter) -> None:
    many = [
        {"name": f"thing-{i}", "category": f"cat-{i % 3}", "tags": [f"t{i % 4}", "common"]}
        for i in range(200)
    ]
    response = post_items(client, many)
    assert response.get_json() == {"created": 200}
    assert statements.inserts_into("categories") == 1
    assert statements.inserts_into("tags") == 1
    assert statements.inserts_into("item_tags") == 1
    assert any(s.startswith("INSERT INTO item_tags ") for s in statements.executemany)
    # Items: PostgreSQL gets multi-row INSERT ... RETURNING batches (tests/test_postgresql.py);
    # SQLite cannot promise RETURNING order, so SQLAlchemy sends it one row at a time there.
    assert statements.count - statements.inserts_into("items") == 5


def test_existing_categories_and_tags_are_reused(client: FlaskClient) -> None:
    post_items(client, SAMPLE)
    post_items(client, SAMPLE)
    data = client.get("/api/items?limit=100").get_json()
    assert len(data) == 6
    assert data[3] == {"id": 4, "name": "kettle", "category": "kitchen", "tags": ["electric", "steel"]}


def test_list_is_cached_with_ttl(client: FlaskClient, app: Flask, cache_redis: fakeredis.FakeRedis) -> None:
    post_items(client, SAMPLE)
    first = client.get("/api/items?limit=2")
    second = client.get("/api/items?limit=2")
    assert first.headers["X-Cache"] == "MISS"
    assert second.headers["X-Cache"] == "HIT"
    assert second.get_data() == first.get_data()
    assert second.mimetype == "application/json"
    keys = [key for key in cache_redis.keys("pystack:items:*") if key != ITEMS_GENERATION_KEY.encode()]
    assert len(keys) == 1
    ttl = cache_redis.ttl(keys[0])
    with app.app_context():
        assert 0 < ttl <= state().settings.cache_ttl


def test_cache_hit_does_not_touch_the_database(client: FlaskClient, statements: StatementCounter) -> None:
    post_items(client, SAMPLE)
    client.get("/api/items")
    statements.reset()
    assert client.get("/api/items").headers["X-Cache"] == "HIT"
    assert statements.count == 0


def test_writes_invalidate_the_cache(client: FlaskClient) -> None:
    post_items(client, SAMPLE[:1])
    assert len(client.get("/api/items").get_json()) == 1
    assert client.get("/api/items").headers["X-Cache"] == "HIT"
    post_items(client, SAMPLE[1:])
    response = client.get("/api/items")
    assert response.headers["X-Cache"] == "MISS"
    assert len(response.get_json()) == 3
    client.post("/api/seed?n=5")
    response = client.get("/api/items")
    assert response.headers["X-Cache"] == "MISS"
    assert len(response.get_json()) == 8


def test_redis_down_degrades_to_miss(dead_redis: redis.Redis) -> None:
    client = make_app(REDIS_CACHE_CLIENT=dead_redis).test_client()
    assert post_items(client, SAMPLE).status_code == 201
    for _ in range(2):
        response = client.get("/api/items")
        assert response.status_code == 200
        assert response.headers["X-Cache"] == "MISS"
        assert len(response.get_json()) == 3


def test_no_n_plus_one(client: FlaskClient, statements: StatementCounter) -> None:
    """The number of SQL statements for a list does not grow with the number of rows."""
    client.post("/api/seed?n=60")
    counts = {}
    for limit in (1, 5, 60):
        statements.reset()
        response = client.get(f"/api/items?limit={limit}")
        assert response.headers["X-Cache"] == "MISS"
        assert len(response.get_json()) == limit
        counts[limit] = statements.count
    assert counts[1] == counts[5] == counts[60] == 2, counts


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", 50), ("?limit=0", 1), ("?limit=3", 3), ("?limit=100000", 500)],
)
def test_limit_is_clamped(client: FlaskClient, query: str, expected: int) -> None:
    client.post("/api/seed?n=600")
    assert len(client.get(f"/api/items{query}").get_json()) == expected


def test_limit_must_be_an_integer(client: FlaskClient) -> None:
    response = client.get("/api/items?limit=lots")
    assert response.status_code == 400
    assert response.get_json() == {"error": "limit must be an integer"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "body must be a JSON object"),
        ({"items": []}, "items must not be empty"),
        ({"items": [{"category": "c"}]}, "items[0].name"),
        ({"items": [{"name": "n", "category": ""}]}, "items[0].category"),
        ({"items": [{"name": "n", "category": "c", "tags": "x"}]}, "items[0].tags"),
        ({"items": [{"name": "n", "category": "c", "tags": [1]}]}, "items[0].tags entries"),
    ],
)
def test_invalid_payloads_are_rejected(client: FlaskClient, body: Any, message: str) -> None:
    response = client.post("/api/items", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]


def test_seed_is_idempotent(client: FlaskClient) -> None:
    first = client.post("/api/seed?n=30").get_json()
    assert first == {"requested": 30, "created": 30, "items": 30, "categories": 12, "tags": 24}
    second = client.post("/api/seed?n=30").get_json()
    assert second["created"] == 0
    assert second["items"] == 30
    third = client.post("/api/seed?n=40").get_json()
    assert third["created"] == 10
    assert third["items"] == 40
    items = client.get("/api/items?limit=40").get_json()
    assert [item["name"] for item in items] == [f"demo-item-{n:06d}" for n in range(1, 41)]
    assert all(item["tags"] for item in items)
