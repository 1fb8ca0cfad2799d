"""Faults under load cost only their own downtime.

A bounded client (20 requests a second, on both balancers) runs through each fault. Requests
that need nothing but the app node (GET /: its Redis counter is optional) must never fail;
requests that need the missing dependency (POST /notes: PostgreSQL through pgbouncer; POST
/jobs: the durable Redis too) may fail only as clean JSON 503s with Retry-After, and only
while the dependency is down plus at most 2 s. The balancers check the app's liveness
(/.pystack/live, answered by the server's workers), so a dependency that every node shares
never takes the nodes out.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from contextlib import contextmanager

import pytest
from prod import APPS, DB, PUBLIC, call, psql
from stackhelpers import Load

RATE = 20
GRACE = 2.0  # seconds after the dependency is back within which a 503 is still allowed


def post(url: str, body: dict) -> dict:
    return call("POST", url, body)[1]


@pytest.fixture(scope="module")
def note() -> int:
    return post(f"{PUBLIC[0]}/notes", {"body": "for the fault suite's jobs"})["id"]


def targets(note_id: int) -> list:
    out: list = []
    for url in PUBLIC:
        out += [f"{url}/", ("POST", f"{url}/notes", {"body": "fault"}), ("POST", f"{url}/jobs", {"note_id": note_id})]
    return out


def needs(target: str) -> set[str]:
    """The dependencies a request of the load needs (beyond an app node)."""
    if target.endswith("/notes"):
        return {"postgresql"}
    if target.endswith("/jobs"):
        return {"postgresql", "durable"}
    return set()


@contextmanager
def under_load(note_id: int, settle: float = 3.0, after: float = 4.0):
    """The load, a few seconds before the fault and a few after it; prints what it saw."""
    with Load(targets(note_id), rate=RATE) as load:
        time.sleep(settle)
        yield load
        time.sleep(after)
    print(f"{len(load.samples)} requests, {len(load.failed())} failed:", load.summary())


def wait_until(host, command: str, timeout: float = 60) -> None:
    loop = f"until {command}; do sleep 0.2; done"
    out = host.run(f"timeout {timeout} sh -c {shlex.quote(loop)}")
    assert out.rc == 0, f"{command} did not succeed within {timeout} s"


def wait_for_ssh(host, timeout: float = 120) -> None:
    """A container just started: its sshd takes a moment to come up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if host.run("true").rc == 0:
                return
        except Exception:  # connection refused or reset while sshd starts
            pass
        assert time.monotonic() < deadline, f"no SSH to {host.backend.get_hostname()} within {timeout} s"
        time.sleep(1)


def server_state(name: str) -> str:
    """A shell test: the app server `name` is up (operational state 2) in this HAProxy."""
    return (
        "echo 'show servers state app' | socat stdio /run/haproxy/admin.sock"
        f" | awk '$4 == \"{name}\" {{print $6}}' | grep -qx 2"
    )


def downs(lbs) -> dict[str, str]:
    """How often each balancer has marked each app node down (HAProxy's chkdown counter)."""
    seen = {}
    for lb in lbs:
        rows = lb.check_output("echo 'show stat' | socat stdio /run/haproxy/admin.sock").splitlines()
        header = rows[0].lstrip("# ").split(",")
        for row in rows[1:]:
            values = dict(zip(header, row.split(","), strict=False))
            if values.get("pxname") == "app" and values.get("svname") in APPS:
                seen[f"{lb.backend.get_hostname()}/{values['svname']}"] = values["chkdown"]
    return seen


@contextmanager
def nodes_stay_in(lbs):
    """The fault must not take any app node out of any balancer."""
    before = downs(lbs)
    yield
    assert downs(lbs) == before


def assert_only_dependency_outage(load: Load, dependency: str, down: float, up: float) -> None:
    """Every failure needs `dependency`, is a clean JSON 503 with Retry-After, and started while
    the dependency was down (or at most GRACE seconds after it was back)."""
    assert len(load.ok()) > 100, load.summary()
    bad = [
        s
        for s in load.failed()
        if dependency not in needs(s.url)
        or s.status != 503
        or not s.retry_after
        or "unavailable" not in s.error
        or not (down - 0.5 <= s.at <= up + GRACE)
    ]
    assert bad == [], (bad[:5], {"down": round(down, 1), "up": round(up, 1)}, load.summary())


def test_a_killed_app_server_costs_no_request(apps, note):
    app = apps[0]
    before = app.check_output("systemctl show -p MainPID --value pystack-app")
    with under_load(note) as load:
        app.run(f"kill -9 {before}")
        wait_until(app, "systemctl is-active -q pystack-app")
    assert load.failed() == [], (load.failed()[:5], load.summary())
    assert app.check_output("systemctl show -p MainPID --value pystack-app") != before


def test_a_vanishing_app_node_costs_no_get_and_no_slow_answer(apps, lbs, note):
    workers = int(apps[0].check_output("sed -n 's/^workers = //p' /etc/pystack/gunicorn.conf.py"))
    with under_load(note) as load:
        stopping = load.now()
        subprocess.run(["docker", "stop", "-t", "10", APPS[0]], check=True, capture_output=True)
        stopped = load.now()
        time.sleep(5)
        subprocess.run(["docker", "start", APPS[0]], check=True, capture_output=True)
        # Back in both balancers once its checks pass again.
        for lb in lbs:
            wait_until(lb, server_state(APPS[0]))
    # A GET that met the vanishing node was retried on the other one.
    assert [s for s in load.failed() if s.url.startswith("GET ")] == [], (load.failed()[:5], load.summary())
    # A POST the node had been handed already (in a worker, or queued in its socket when the
    # socket closed) is not sent twice: it may have run. At most a few, and only then.
    posts = load.failed()
    assert len(posts) <= 2 * workers, (posts, load.summary())
    assert all(stopping - 0.5 <= s.at <= stopped + 1.0 and s.status in (502, 503) for s in posts), posts
    slow = [s for s in load.ok() if s.seconds > 2.5]
    assert slow == [], (slow[:5], load.summary())


def test_balancer_reloads_cost_no_request(lbs, note):
    with under_load(note) as load:
        for _ in range(10):
            lbs[0].run("systemctl reload haproxy")
            time.sleep(1)
    assert load.failed() == [], (load.failed()[:5], load.summary())


def test_a_pgbouncer_restart_costs_only_its_own_downtime(pooler, lbs, note):
    with nodes_stay_in(lbs), under_load(note) as load:
        down = load.now()
        pooler.run("systemctl restart pgbouncer")
        wait_until(pooler, "pg_isready -q -h 127.0.0.1 -p 6432")
        up = load.now()
    assert_only_dependency_outage(load, "postgresql", down, up)


def test_a_postgresql_restart_costs_only_its_own_downtime(db, lbs, note):
    with nodes_stay_in(lbs), under_load(note) as load:
        down = load.now()
        db.run("systemctl restart postgresql@17-main")
        wait_until(db, "pg_isready -q -h 127.0.0.1 -p 5432")
        up = load.now()
    assert_only_dependency_outage(load, "postgresql", down, up)


def test_a_stopped_cache_redis_is_a_miss_not_an_error(cache, lbs, note):
    with nodes_stay_in(lbs), under_load(note) as load:
        cache.run("systemctl stop redis-server@cache")
        time.sleep(10)
        cache.run("systemctl start redis-server@cache")
    assert load.failed() == [], (load.failed()[:5], load.summary())


def test_a_stopped_durable_redis_costs_only_its_own_downtime(cache, lbs, note):
    with nodes_stay_in(lbs), under_load(note) as load:
        down = load.now()
        cache.run("systemctl stop redis-server@durable")
        time.sleep(5)
        cache.run("systemctl start redis-server@durable")
        wait_until(cache, "redis-cli -p 6380 PING 2>&1 | grep -q NOAUTH")
        up = load.now()
    assert_only_dependency_outage(load, "durable", down, up)


@pytest.mark.parametrize(
    ("who", "unit"),
    [
        ("db", "postgresql@17-main"),
        ("pooler", "pgbouncer"),
        ("cache", "redis-server@cache"),
        ("cache", "redis-server@durable"),
        ("lbs", "haproxy"),
        ("apps", "pystack-app"),
        ("worker", "pystack-worker"),
    ],
)
def test_each_service_restarts_itself_after_being_killed(request, who, unit):
    host = request.getfixturevalue(who)
    host = host[0] if isinstance(host, list) else host
    before = host.check_output(f"systemctl show -p MainPID --value {unit}")
    assert before != "0"
    host.run(f"kill -9 {before}")
    wait_until(host, f'[ "$(systemctl show -p MainPID --value {unit})" != {before} ] && systemctl is-active -q {unit}')
    # Not a restart the tests made: systemd's own.
    assert int(host.check_output(f"systemctl show -p NRestarts --value {unit}")) >= 1


def test_no_acknowledged_write_is_lost_when_the_db_host_is_killed(db, note):
    tag = f"kill-{time.monotonic_ns()}"
    acknowledged = [post(f"{PUBLIC[i % 2]}/notes", {"body": f"{tag}-{i}"})["id"] for i in range(300)]
    subprocess.run(["docker", "kill", "--signal", "KILL", DB], check=True, capture_output=True)
    subprocess.run(["docker", "start", DB], check=True, capture_output=True)
    wait_for_ssh(db)
    wait_until(db, "pg_isready -q -h 127.0.0.1 -p 5432", timeout=120)
    ids = ",".join(str(i) for i in acknowledged)
    assert psql(db, f"SELECT count(*) FROM notes WHERE id IN ({ids})") == str(len(acknowledged))
    # And the stack serves again through both balancers.
    for url in PUBLIC:
        deadline = time.monotonic() + 30
        while True:
            try:
                post(f"{url}/notes", {"body": "after the kill"})
                break
            except Exception:
                assert time.monotonic() < deadline, url
                time.sleep(1)
