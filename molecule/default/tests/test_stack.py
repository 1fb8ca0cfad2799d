"""The whole stack, layer by layer and end to end, as `make lab` builds it."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest
from stackhelpers import PROJECT, http, run_playbook, run_task

LB = "https://127.0.0.1"
HOSTS = {
    "lb": "pystack-default-lb1",
    "app1": "pystack-default-app1",
    "app2": "pystack-default-app2",
    "worker": "pystack-default-worker1",
    "db": "pystack-default-db1",
    "cache": "pystack-default-cache1",
}


def only(host, *names: str) -> None:
    if host.backend.get_hostname() not in {HOSTS[n] for n in names}:
        pytest.skip(f"{', '.join(names)} only")


def through_lb(host, path: str, method: str = "GET", body: dict | None = None):
    return http(host, LB + path, method, body, insecure=True)


def listening(host, port: int) -> set[str]:
    return set(host.check_output(f"ss -Hltn 'sport = :{port}' | awk '{{print $4}}'").split())


def private_address(host) -> str:
    return host.check_output("hostname -I").split()[0]


# Each layer on its own.


def test_data_tier_serves_only_its_clients(host):
    only(host, "db")
    # Debian 13's PostgreSQL, one cluster.
    assert host.check_output("ls /etc/postgresql").split() == ["17"]
    assert host.service("postgresql@17-main").is_running
    assert host.service("pgbouncer").is_running
    assert listening(host, 5432) <= {"127.0.0.1:5432", f"{private_address(host)}:5432", "[::1]:5432"}
    assert not any(a.startswith(("0.0.0.0", "*")) for a in listening(host, 6432))


def test_cache_tier_runs_both_instances_privately(host):
    only(host, "cache")
    for name, port in (("cache", 6379), ("durable", 6380)):
        assert host.service(f"redis-server@{name}").is_running
        assert not any(a.startswith(("0.0.0.0", "*")) for a in listening(host, port))


def test_app_nodes_serve_on_private_address_and_loopback(host):
    only(host, "app1", "app2")
    assert host.service("pystack-app").is_running
    assert listening(host, 8000) == {"127.0.0.1:8000", f"{private_address(host)}:8000"}


def test_worker_answers_through_the_broker(host):
    only(host, "worker")
    assert host.service("pystack-worker").is_running
    ping = host.run(
        "cd /opt/pystack/current && set -a && . /etc/pystack/app.env && "
        "runuser -u pystack-app -- venv/bin/celery -A pystack_flask.celery_app:celery inspect ping --timeout 10"
    )
    assert ping.rc == 0, ping.stdout + ping.stderr
    assert "pong" in ping.stdout


def test_load_balancer_config_is_valid_and_running(host):
    only(host, "lb")
    assert host.service("haproxy").is_running
    assert host.run("haproxy -c -f /etc/haproxy/haproxy.cfg").rc == 0


# End to end, through the load balancer.


def test_both_app_nodes_answer_through_the_balancer(host):
    only(host, "lb")
    seen = {}
    for _ in range(20):
        status, _, body = through_lb(host, "/runtime")
        assert status == 200, body
        runtime = json.loads(body)
        seen[runtime["host"]] = (runtime["interpreter"], runtime["jit"])
    assert seen == {HOSTS["app1"]: ("cpython", False), HOSTS["app2"]: ("pyston", True)}


def test_a_write_reaches_postgresql_and_reads_come_back_from_redis(host):
    only(host, "lb")
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    status, _, body = through_lb(host, "/api/items", "POST", {"items": [{"name": name, "category": "e2e", "tags": []}]})
    assert status == 201, body
    db = host.get_host(f"ansible://{HOSTS['db']}", ansible_inventory=host.backend.ansible_inventory)
    rows = db.check_output(
        f"runuser -u postgres -- psql -At -d app -c \"SELECT count(*) FROM items WHERE name = '{name}'\""
    )
    assert rows == "1"
    status, headers, body = through_lb(host, "/api/items?limit=1000")
    assert (status, headers.get("x-cache")) == (200, "MISS")
    assert name in body
    assert through_lb(host, "/api/items?limit=1000")[1].get("x-cache") == "HIT"


def test_a_task_enqueued_through_the_app_runs_on_the_worker(host):
    only(host, "lb")
    result = run_task(host, LB, insecure=True)
    assert result["state"] == "SUCCESS", result
    assert result["result"]["worker"] == HOSTS["worker"]


LOAD_CLIENT = r"""
import json, os, ssl, sys, time, urllib.request
rate, limit, url = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
ctx = ssl._create_unverified_context()
ok, failed, errors, start = 0, 0, {}, time.monotonic()
while time.monotonic() - start < limit and not os.path.exists("/tmp/load.stop"):
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=15) as r:
            ok += r.status == 200
            failed += r.status != 200
    except Exception as exc:
        failed += 1
        errors[repr(exc)[:120]] = errors.get(repr(exc)[:120], 0) + 1
    time.sleep(max(0.0, 1 / rate - (time.monotonic() - t0)))
json.dump({"ok": ok, "failed": failed, "errors": errors}, open("/tmp/load.json", "w"))
"""


def test_rolling_update_switches_an_interpreter_with_zero_failed_requests(host):
    only(host, "lb")
    # The operator's change: app1 moves to PyPy in the inventory.
    host_vars = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory" / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{HOSTS['app1']}.yml").write_text("app_interpreter: pypy\n")
    host.run("rm -f /tmp/load.stop /tmp/load.json")
    host.run(f"cat > /tmp/load.py <<'EOF'\n{LOAD_CLIENT}\nEOF")
    # A bounded client: 10 requests a second, at most 15 minutes, stopped below.
    host.run(f"nohup python3 /tmp/load.py 10 900 {LB}/api/items?limit=20 > /tmp/load.log 2>&1 &")
    try:
        rolled = run_playbook(PROJECT / "playbooks" / "rolling_update.yml")
    finally:
        host.run("touch /tmp/load.stop")
    assert rolled.rc == 0, rolled.output
    deadline = time.monotonic() + 60
    while not host.file("/tmp/load.json").exists and time.monotonic() < deadline:
        time.sleep(1)
    load = json.loads(host.file("/tmp/load.json").content_string)
    assert load["ok"] > 100, load
    assert load["failed"] == 0, load
    seen = {}
    for _ in range(20):
        runtime = json.loads(through_lb(host, "/runtime")[2])
        seen[runtime["host"]] = runtime["interpreter"]
    assert seen == {HOSTS["app1"]: "pypy", HOSTS["app2"]: "pyston"}
