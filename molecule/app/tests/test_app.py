"""The app tier as its users see it: each node serves the interpreter and server
its inventory asks for, talks to PostgreSQL (through pgbouncer) and Redis, and
survives worker crashes, reloads and interpreter switches."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import pytest
import stackhelpers
from stackhelpers import APP_PLAYBOOK, env_file, pgbouncer_stats, run_playbook, write_items
from stackhelpers import http as get

UNIT = "pystack-app"
PORT = 8000


@pytest.fixture
def app_host(host):
    if "app" not in host.ansible.get_variables()["group_names"]:
        pytest.skip("app nodes only")
    return host


def settings(host) -> dict:
    v = host.ansible.get_variables()
    interpreter = v["app_interpreter"]
    return {
        "interpreter": interpreter,
        "server": v.get("app_server", "gunicorn"),
        "jit": v.get("app_jit", interpreter in ("pyston", "pypy")),
    }


def base(host) -> str:
    """Where the node's server answers locally: loopback, or granian's one (private) address."""
    if settings(host)["server"] == "granian":
        return f"http://{host.check_output('hostname -I').split()[0]}:{PORT}"
    return f"http://127.0.0.1:{PORT}"


def runtime(host) -> dict:
    status, _, body = get(host, base(host) + "/runtime")
    assert status == 200, body
    return json.loads(body)


def deploy_probe(host) -> dict:
    return stackhelpers.deploy_probe(host, base(host))


def wait_for(predicate, timeout: float = 60, interval: float = 1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(interval)


def test_runtime_reports_the_configured_interpreter_and_server(app_host):
    want = settings(app_host)
    seen = runtime(app_host)
    assert seen["interpreter"] == want["interpreter"]
    assert seen["server"] == want["server"]
    assert seen["framework"] == "flask"
    assert seen["jit"] is want["jit"]
    assert seen["host"] == app_host.check_output("hostname")
    assert seen["release"].split("-", 1)[1].startswith(want["interpreter"] + "-")


def test_deploy_probe_reports_what_the_inventory_asks(app_host):
    want = settings(app_host)
    seen = deploy_probe(app_host)
    assert (seen["interpreter"], seen["jit"], seen["server"], seen["protocol"]) == (
        want["interpreter"],
        want["jit"],
        want["server"],
        "wsgi",
    )
    assert seen["release"] == app_host.check_output("basename $(readlink /opt/pystack/current)")


def test_canary_runs_cpython_with_its_jit(app_host):
    if app_host.backend.get_hostname() != "pystack-app-jit":
        pytest.skip("the forky canary")
    seen = runtime(app_host)
    assert seen["python_version"].startswith("3.14"), seen
    assert (seen["interpreter"], seen["jit"]) == ("cpython", True)
    assert env_file(app_host)["PYTHON_JIT"] == "1"


def test_healthz_sees_postgresql_and_redis(app_host):
    status, _, body = get(app_host, base(app_host) + "/healthz")
    assert status == 200, body
    assert json.loads(body)["checks"] == {"postgresql": "ok", "redis": "ok"}


def test_items_come_from_postgresql_then_from_redis(app_host):
    name = f"item-{uuid.uuid4().hex[:8]}"
    status, _, body = get(
        app_host, base(app_host) + "/api/items", "POST", {"items": [{"name": name, "category": "t", "tags": ["x"]}]}
    )
    assert status == 201, body
    status, headers, body = get(app_host, base(app_host) + "/api/items?limit=500")
    assert status == 200, body
    assert headers["x-cache"] == "MISS"
    assert name in {item["name"] for item in json.loads(body)}
    status, headers, _ = get(app_host, base(app_host) + "/api/items?limit=500")
    assert headers["x-cache"] == "HIT"


def test_psycopg_nodes_use_prepared_statements_through_pgbouncer(app_host):
    # psycopg 3 (CPython, Pyston) prepares a query on the server after 5
    # executions on a connection; pgbouncer 1.24 keeps the statement across
    # transactions (max_prepared_statements) and counts each execution as a
    # bind. PyPy's psycopg2cffi never prepares. Every write must still succeed.
    # 60 writes: each of the node's workers sees about a dozen, past the threshold.
    prepares = settings(app_host)["interpreter"] != "pypy"
    db = app_host.get_host("ansible://pystack-app-db1", ansible_inventory=app_host.backend.ansible_inventory)
    before = pgbouncer_stats(db)
    write_items(app_host, base(app_host), 60, "prep")
    after = pgbouncer_stats(db)
    binds = after["total_bind_count"] - before["total_bind_count"]
    if prepares:
        assert binds >= 10, (before, after)
        assert after["total_client_parse_count"] > before["total_client_parse_count"], (before, after)
    else:
        assert binds == 0, (before, after)


def test_static_files_get_content_hashed_names(app_host):
    # The lab's prepare command for the Flask app (flask --app wsgi digest-static).
    static = "/opt/pystack/current/staticfiles"
    manifest = json.loads(app_host.file(f"{static}/staticfiles.json").content_string)
    hashed = manifest["paths"]["css/site.css"]
    assert re.fullmatch(r"css/site\.[0-9a-f]{12}\.css", hashed), hashed
    status, headers, _ = get(app_host, f"{base(app_host)}/static/{hashed}")
    assert status == 200
    assert "immutable" in headers["cache-control"]
    assert f"/static/{hashed}" in get(app_host, base(app_host) + "/")[2]


def test_listens_on_its_private_address_and_loopback_only(app_host):
    sockets = set(app_host.check_output("ss -Hltn 'sport = :8000' | awk '{print $4}'").split())
    private = app_host.check_output("hostname -I").split()[0]
    # granian serves one socket (systemd's): the private address.
    want = {f"{private}:8000"} | (set() if settings(app_host)["server"] == "granian" else {"127.0.0.1:8000"})
    assert sockets == want


def test_environment_file_is_private_to_the_app_user(app_host):
    env = app_host.file("/etc/pystack/app.env")
    assert env.user == "pystack-app"
    assert env.mode == 0o600
    assert env_file(app_host)["DATABASE_URL"].startswith("postgresql://app:")


def test_unit_is_hardened(app_host):
    props = dict(
        line.split("=", 1)
        for line in app_host.check_output(
            f"systemctl show {UNIT} -p User -p NoNewPrivileges -p ProtectSystem -p PrivateTmp -p ProtectHome"
        ).splitlines()
    )
    assert props == {
        "User": "pystack-app",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }


def main_pid(host) -> int:
    return int(host.check_output(f"systemctl show -p MainPID --value {UNIT}"))


def workers(host) -> set[int]:
    return {int(p) for p in host.run(f"pgrep -P {main_pid(host)}").stdout.split()}


def test_a_killed_worker_is_replaced(app_host):
    before = workers(app_host)
    assert len(before) == int(app_host.check_output("nproc")) * 2 + 1
    victim = min(before)
    app_host.run(f"kill -9 {victim}")
    wait_for(lambda: victim not in workers(app_host) and len(workers(app_host)) == len(before))
    assert get(app_host, base(app_host) + "/healthz")[0] == 200


def test_a_killed_master_is_restarted_by_systemd(app_host):
    old = main_pid(app_host)
    app_host.run(f"kill -9 {old}")
    wait_for(lambda: main_pid(app_host) not in (0, old) and app_host.service(UNIT).is_running)
    wait_for(lambda: get(app_host, base(app_host) + "/healthz")[0] == 200)


def test_reload_and_restart_drop_no_request(app_host):
    # 400 requests in a row while the server reloads (new workers) and then
    # restarts (new master; systemd keeps the listening sockets meanwhile).
    # A request may wait in the backlog while a PyPy master boots on a busy
    # machine: 60 s each, and none may fail.
    app_host.run(
        "rm -f /tmp/codes; (for i in $(seq 400); do curl -s -m 60 -o /dev/null -w '%{http_code}\\n' "
        f"{base(app_host)}/page?rows=50 >> /tmp/codes; done) > /dev/null 2>&1 &"
    )
    time.sleep(1)
    assert app_host.run(f"systemctl reload {UNIT}").rc == 0
    time.sleep(2)
    assert app_host.run(f"systemctl restart {UNIT}").rc == 0
    wait_for(lambda: len(app_host.file("/tmp/codes").content_string.split()) >= 400, timeout=180)
    codes = app_host.file("/tmp/codes").content_string.split()
    assert set(codes) == {"200"}, {c: codes.count(c) for c in set(codes)}


def test_switching_the_interpreter_is_a_normal_deploy(app_host):
    # The canary: its inventory says pyston; switch it to cpython and back.
    name = app_host.backend.get_hostname()
    if name != "pystack-app-pyston":
        pytest.skip("done on the pyston node")
    switched = run_playbook(APP_PLAYBOOK, {"app_interpreter": "cpython"}, "--limit", name)
    assert switched.rc == 0, switched.output
    seen = runtime(app_host)
    assert (seen["interpreter"], seen["jit"]) == ("cpython", False)
    again = run_playbook(APP_PLAYBOOK, {"app_interpreter": "cpython"}, "--limit", name)
    assert again.rc == 0, again.output
    assert again.changed() == 0, again.output
    back = run_playbook(APP_PLAYBOOK, None, "--limit", name)
    assert back.rc == 0, back.output
    seen = runtime(app_host)
    assert (seen["interpreter"], seen["jit"]) == ("pyston", True)
    # Both releases are kept, so either switch is a rollback too.
    assert len(app_host.check_output("ls /opt/pystack/releases").split()) >= 2


def test_app_jit_is_one_variable_on_the_same_virtualenv(app_host):
    # The A/B of a JIT: app_jit false on the forky canary (CPython's JIT) and
    # the PyPy node, then back; each keeps its release and virtualenv.
    name = app_host.backend.get_hostname()
    if name != "pystack-app-jit":
        pytest.skip("run once, for the canary and the PyPy node")
    nodes = "pystack-app-jit,pystack-app-pypy"
    pypy = app_host.get_host("ansible://pystack-app-pypy", ansible_inventory=app_host.backend.ansible_inventory)
    releases = {h: h.check_output("readlink /opt/pystack/current") for h in (app_host, pypy)}
    off = run_playbook(APP_PLAYBOOK, {"app_jit": False}, "--limit", nodes)
    assert off.rc == 0, off.output
    for node in (app_host, pypy):
        assert node.check_output("readlink /opt/pystack/current") == releases[node]
        assert deploy_probe(node)["jit"] is False
        assert runtime(node)["jit"] is False
    back = run_playbook(APP_PLAYBOOK, None, "--limit", nodes)
    assert back.rc == 0, back.output
    for node in (app_host, pypy):
        assert deploy_probe(node)["jit"] is True
        assert runtime(node)["jit"] is True


def test_new_code_reaches_granian_by_a_reload_under_load(app_host, tmp_path):
    # New code in the same virtualenv: granian's workers are replaced one by
    # one (HUP), its main process stays, and no request fails meanwhile.
    if app_host.backend.get_hostname() != "pystack-app-jit":
        pytest.skip("run once, for both granian nodes")
    nodes = {app_host.backend.get_hostname(): app_host}
    nodes["pystack-app-pypy"] = app_host.get_host(
        "ansible://pystack-app-pypy", ansible_inventory=app_host.backend.ansible_inventory
    )
    source = tmp_path / "flask"
    shutil.copytree(
        Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "app_src" / "flask",
        source,
        ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", ".ruff_cache"),
    )
    (source / "RELEASE-NOTE.txt").write_text("a change of code, not of requirements\n")
    before = {name: (main_pid(node), deploy_probe(node)["release"]) for name, node in nodes.items()}
    # Requests in a row until the deploy is over (at most 3000, about 12 minutes).
    for node in nodes.values():
        node.run(
            "rm -f /tmp/reload-codes /tmp/reload-stop /tmp/reload-done; (for i in $(seq 3000); do "
            "[ -e /tmp/reload-stop ] && break; curl -s -m 60 -o /dev/null -w '%{http_code}\\n' "
            f"{base(node)}/page?rows=20 >> /tmp/reload-codes; sleep 0.2; done; touch /tmp/reload-done) "
            "> /dev/null 2>&1 &"
        )
    # Last in this file for these nodes: they keep serving the new code (the
    # scenario ends here; a deploy back would prove nothing new).
    try:
        run = run_playbook(APP_PLAYBOOK, {"app_source_path": str(source)}, "--limit", ",".join(nodes))
        assert run.rc == 0, run.output
        for name, node in nodes.items():
            pid, release = before[name]
            seen = deploy_probe(node)
            assert seen["release"] != release
            assert seen["release"].split("-", 1)[1] == release.split("-", 1)[1], "same virtualenv"
            assert main_pid(node) == pid, "reloaded, not restarted"
    finally:
        for node in nodes.values():
            node.run("touch /tmp/reload-stop")
    for name, node in nodes.items():
        wait_for(lambda n=node: n.file("/tmp/reload-done").exists, timeout=120)
        codes = node.file("/tmp/reload-codes").content_string.split()
        assert len(codes) >= 100, (name, len(codes))
        assert set(codes) == {"200"}, (name, {c: codes.count(c) for c in set(codes)})


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        ({"app_interpreter": "jython"}, ["app_interpreter", "cpython, pyston, pypy"]),
        ({"app_server": "waitress"}, ["app_server", "gunicorn, uwsgi, granian"]),
        ({"app_protocol": "http3"}, ["app_protocol", "wsgi, asgi"]),
        ({"app_server": "uwsgi", "app_protocol": "asgi"}, ["app_protocol", "uwsgi"]),
        ({"app_jit": True}, ["app_jit", "pystack-app-cpython", "CPython 3.13", "app_jit: false"]),
        ({"app_interpreter": "pyston"}, ["app_interpreter", "CPython 3.13"]),
        ({"app_workers": 0}, ["app_workers"]),
    ],
)
def test_bad_input_is_refused_before_any_change(app_host, extra, needles):
    name = app_host.backend.get_hostname()
    if name != "pystack-app-cpython":
        pytest.skip("run once")
    run = run_playbook(APP_PLAYBOOK, extra, "--limit", name)
    assert run.rc != 0
    for needle in needles:
        assert needle in run.output
    assert run.recap(), run.output
    assert run.changed() == 0, run.output
