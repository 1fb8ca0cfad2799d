from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from django.test import Client

from items.views import ITEMS_GENERATION_KEY

from .conftest import Statements

pytestmark = pytest.mark.django_db

SAMPLE = [
    {"name": "kettle", "category": "kitchen", "tags": ["steel", "electric"]},
    {"name": "pan", "category": "kitchen", "tags": ["steel"]},
    {"name": "lamp", "category": "living", "tags": []},
]


def post_items(client: Client, items: Any) -> Any:
    return client.post("/api/items", {"items": items}, content_type="application/json")


def test_bulk_insert_and_list(client: Client) -> None:
    response = post_items(client, SAMPLE)
    assert response.status_code == 201
    assert response.json() == {"created": 3}

    data = client.get("/api/items?limit=10").json()
    first_id = data[0]["id"]
    assert data == [
        {"id": first_id, "name": "kettle", "category": "kitchen", "tags": ["electric", "steel"]},
        {"id": first_id + 1, "name": "pan", "category": "kitchen", "tags": ["steel"]},
        {"id": first_id + 2, "name": "lamp", "category": "living", "tags": []},
    ]


def test_bulk_insert_is_batched(client: Client, statements: Statements) -> None:
    many = [
        {"name": f"thing-{i}", "category": f"cat-{i % 3}", "tags": [f"t{i % 4}", "common"]}
        for i in range(200)
    ]
    with statements:
        response = post_items(client, many)
    assert response.json() == {"created": 200}
    assert statements.inserts_into("items_category") == 1
    assert statements.inserts_into("items_tag") == 1
    assert statements.inserts_into("items_item") == 1
    assert statements.inserts_into("items_item_tags") == 1
    # Plus one SELECT of the ids for categories and one for tags: 6 statements for 200 items.
    assert statements.count == 6, statements.sql


def test_existing_categories_and_tags_are_reused(client: Client) -> None:
    post_items(client, SAMPLE)
    post_items(client, SAMPLE)
    data = client.get("/api/items?limit=100").json()
    assert len(data) == 6
    assert {k: v for k, v in data[3].items() if k != "id"} == {
        "name": "kettle",
        "category": "kitchen",
        "tags": ["electric", "steel"],
    }
    assert client.post("/api/seed?n=0").json()["categories"] == 2


def test_list_is_cached_with_ttl(client: Client, cache_redis: fakeredis.FakeRedis) -> None:
    post_items(client, SAMPLE)
    first = client.get("/api/items?limit=2")
    second = client.get("/api/items?limit=2")
    assert first["X-Cache"] == "MISS"
    assert second["X-Cache"] == "HIT"
    assert second.content == first.content
    assert second["Content-Type"] == "application/json"
    keys = [key for key in cache_redis.keys("pystack:1:items:*") if not key.endswith(b":gen")]
    assert len(keys) == 1
    assert 0 < cache_redis.ttl(keys[0]) <= 30


def test_cache_hit_does_not_touch_the_database(client: Client, statements: Statements) -> None:
    post_items(client, SAMPLE)
    client.get("/api/items")
    with statements:
        assert client.get("/api/items")["X-Cache"] == "HIT"
    assert statements.count == 0


def test_writes_invalidate_the_cache(client: Client, cache_redis: fakeredis.FakeRedis) -> None:
    post_items(client, SAMPLE[:1])
    assert len(client.get("/api/items").json()) == 1
    assert client.get("/api/items")["X-Cache"] == "HIT"
    post_items(client, SAMPLE[1:])
    response = client.get("/api/items")
    assert response["X-Cache"] == "MISS"
    assert len(response.json()) == 3
    client.post("/api/seed?n=5")
    response = client.get("/api/items")
    assert response["X-Cache"] == "MISS"
    assert len(response.json()) == 8
    # The generation counter never expires: it must outlive the entries it names.
    assert cache_redis.get(f"pystack:1:{ITEMS_GENERATION_KEY}") == b"3"
    assert cache_redis.ttl(f"pystack:1:{ITEMS_GENERATION_KEY}") == -1


@pytest.mark.usefixtures("dead_cache")
def test_redis_down_degrades_to_miss(client: Client) -> None:
    assert post_items(client, SAMPLE).status_code == 201
    for _ in range(2):
        response = client.get("/api/items")
        assert response.status_code == 200
        assert response["X-Cache"] == "MISS"
        assert len(response.json()) == 3


@pytest.mark.usefixtures("no_cache")
def test_no_cache_configured_is_always_a_miss(client: Client) -> None:
    post_items(client, SAMPLE)
    assert [client.get("/api/items")["X-Cache"] for _ in range(2)] == ["MISS", "MISS"]


def test_no_n_plus_one(client: Client, statements: Statements) -> None:
    """The number of SQL statements for a list does not grow with the number of rows."""
    client.post("/api/seed?n=60")
    counts = {}
    for limit in (1, 5, 60):
        with statements:
            response = client.get(f"/api/items?limit={limit}")
        assert response["X-Cache"] == "MISS"
        assert len(response.json()) == limit
        assert all(item["tags"] for item in response.json())
        counts[limit] = statements.count
    # select_related("category") joins; prefetch_related("tags") is one IN query.
    assert counts[1] == counts[5] == counts[60] == 2, counts


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", 50), ("?limit=0", 1), ("?limit=3", 3), ("?limit=100000", 500)],
)
def test_limit_is_clamped(client: Client, query: str, expected: int) -> None:
    client.post("/api/seed?n=600")
    assert len(client.get(f"/api/items{query}").json()) == expected


def test_limit_must_be_an_integer(client: Client) -> None:
    response = client.get("/api/items?limit=lots")
    assert response.status_code == 400
    assert response.json() == {"error": "limit must be an integer"}


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
def test_invalid_payloads_are_rejected(client: Client, body: Any, message: str) -> None:
    response = client.post("/api/items", body, content_type="application/json")
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_malformed_json_is_rejected(client: Client) -> None:
    response = client.post("/api/items", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "body must be a JSON object" in response.json()["error"]


def test_json_api_needs_no_csrf_token() -> None:
    strict = Client(enforce_csrf_checks=True)
    assert post_items(strict, SAMPLE).status_code == 201
    assert strict.post("/api/seed?n=1").status_code == 200


def test_seed_is_idempotent(client: Client) -> None:
    first = client.post("/api/seed?n=30").json()
    assert first == {"requested": 30, "created": 30, "items": 30, "categories": 12, "tags": 24}
    second = client.post("/api/seed?n=30").json()
    assert second["created"] == 0
    assert second["items"] == 30
    third = client.post("/api/seed?n=40").json()
    assert third["created"] == 10
    assert third["items"] == 40
    items = client.get("/api/items?limit=40").json()
    assert [item["name"] for item in items] == [f"demo-item-{n:06d}" for n in range(1, 41)]
    assert all(item["tags"] for item in items)


def test_methods(client: Client) -> None:
    assert client.get("/api/seed").status_code == 405
    assert client.delete("/api/items").status_code == 405
