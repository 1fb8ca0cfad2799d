"""Fixtures for the production scenario: each test names the hosts it is about."""

from __future__ import annotations

import pytest
import testinfra
from prod import APPS, CACHE, DB, LB, MONITORING, POOLER, WORKER


@pytest.fixture(scope="session")
def node(request):
    """A scenario host by inventory name, over its SSH connection from the inventory."""
    inventory = request.config.option.ansible_inventory
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def lbs(node):
    return [node(name) for name in LB]


@pytest.fixture(scope="session")
def apps(node):
    return [node(name) for name in APPS]


@pytest.fixture(scope="session")
def worker(node):
    return node(WORKER)


@pytest.fixture(scope="session")
def db(node):
    return node(DB)


@pytest.fixture(scope="session")
def pooler(node):
    return node(POOLER)


@pytest.fixture(scope="session")
def cache(node):
    return node(CACHE)


@pytest.fixture(scope="session")
def monitoring(node):
    return node(MONITORING)
