"""The Django reference app on the app tier, as its users see it."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
import stackhelpers
from stackhelpers import APP_PLAYBOOK, env_file, pgbouncer_stats, run_playbook, run_task, write_items
from stackhelpers import http as get

BASE = "http://127.0.0.1:8000"
DJANGO_HOSTS = ("pystack-django-cpython", "pystack-django-pyston")


@pytest.fixture
def app_host(host):
    if "app" not in host.ansible.get_variables()["group_names"]:
        pytest.skip("app nodes only")
    return host


def test_runtime_is_django_on_the_configured_interpreter(app_host):
    want = app_host.ansible.get_variables()["app_interpreter"]
    status, _, body = get(app_host, BASE + "/runtime")
    assert status == 200, body
    seen = json.loads(body)
    assert (seen["framework"], seen["interpreter"], seen["server"]) == ("django", want, "gunicorn")
    assert seen["jit"] is (want == "pyston")
    assert seen["db_driver"] == "psycopg"
    # Django 5.2 LTS wherever Python allows; CPython 3.9 (the pyston canary) only
    # gets 4.2, past its end of life (the deploy warns).
    version = app_host.check_output("python3 -c 'import sys; print(*sys.version_info[:2])'")
    python = tuple(int(part) for part in version.split())
    assert seen["framework_version"].startswith("5.2." if python >= (3, 10) else "4.2."), (python, seen)


def test_queries_are_prepared_once_and_reused_through_pgbouncer(app_host):
    # Each worker keeps its connection to pgbouncer (CONN_MAX_AGE), psycopg 3
    # prepares a query after 5 executions on it, and pgbouncer 1.24 keeps the
    # statement across transactions: executions show as binds. Under ASGI
    # Django runs each request's sync code in a thread of its own, with a
    # connection of its own: nothing reaches 5 executions, and every write
    # must still succeed.
    db = app_host.get_host("ansible://pystack-django-db1", ansible_inventory=app_host.backend.ansible_inventory)
    before = pgbouncer_stats(db)
    write_items(app_host, BASE, 60, "djprep")
    after = pgbouncer_stats(db)
    if app_host.ansible.get_variables().get("app_protocol", "wsgi") == "asgi":
        return
    assert after["total_bind_count"] - before["total_bind_count"] >= 10, (before, after)
    assert after["total_client_parse_count"] > before["total_client_parse_count"], (before, after)


def test_healthz_sees_postgresql_and_redis(app_host):
    status, _, body = get(app_host, BASE + "/healthz")
    assert status == 200, body


def test_cached_items_miss_then_hit(app_host):
    name = f"dj-{uuid.uuid4().hex[:8]}"
    status, _, body = get(
        app_host, BASE + "/api/items", "POST", {"items": [{"name": name, "category": "d", "tags": []}]}
    )
    assert status == 201, body
    status, headers, body = get(app_host, BASE + "/api/items?limit=500")
    assert (status, headers["x-cache"]) == (200, "MISS"), body
    assert name in {item["name"] for item in json.loads(body)}
    assert get(app_host, BASE + "/api/items?limit=500")[1]["x-cache"] == "HIT"


def test_static_files_are_collected_with_hashed_names(app_host):
    static = "/opt/pystack/current/staticfiles"
    manifest = json.loads(app_host.file(f"{static}/staticfiles.json").content_string)
    hashed = manifest["paths"]["css/site.css"]
    assert re.fullmatch(r"css/site\.[0-9a-f]{12}\.css", hashed), hashed
    assert app_host.file(f"{static}/{hashed}").exists
    # The page links the hashed name, so the edge can cache it as immutable.
    _, _, index = get(app_host, BASE + "/")
    assert f"/static/{hashed}" in index


def test_the_migration_ran_exactly_once(host):
    if host.backend.get_hostname() != DJANGO_HOSTS[0]:
        pytest.skip("checked once, across the app nodes")
    records = []
    for name in DJANGO_HOSTS:
        other = host.get_host(f"ansible://{name}", ansible_inventory=host.backend.ansible_inventory)
        log = other.file("/opt/pystack/migrations.log")
        if log.exists:
            records += log.content_string.splitlines()
    assert len(records) == 1, records


def test_settings_come_as_a_django_project_reads_them(app_host):
    env = env_file(app_host)
    # dj-database-url's form, no driver suffix; the project names its own settings module.
    assert env["DATABASE_URL"].startswith("postgresql://app:")
    assert env["DJANGO_SETTINGS_MODULE"] == "pystack_django.settings"
    assert env["DJANGO_SECRET_KEY"] == env["SECRET_KEY"]
    assert "127.0.0.1" in env["DJANGO_ALLOWED_HOSTS"].split(",")


def test_a_celery_task_enqueued_through_django_runs_on_the_worker(host):
    if host.backend.get_hostname() != DJANGO_HOSTS[0]:
        pytest.skip("run once")
    worker = host.get_host("ansible://pystack-django-worker", ansible_inventory=host.backend.ansible_inventory)
    # The worker runs `celery -A pystack_django worker`, the django preset's default.
    assert "celery -A pystack_django worker" in worker.file("/etc/pystack/worker.sh").content_string
    address = worker.check_output("hostname -I").split()[0]

    def succeeded() -> float:
        text = worker.check_output(f"curl -s -m 10 http://{address}:9180/metrics")
        return float(re.search(r'^pystack_tasks_total\{outcome="succeeded"\} (\S+)$', text, re.M).group(1))

    before = succeeded()
    result = run_task(host, BASE)
    assert result["state"] == "SUCCESS", result
    assert result["result"]["worker"] == worker.check_output("hostname")
    # The worker host counts the task's outcome for Prometheus (the app role's task metrics).
    deadline = time.monotonic() + 20
    while succeeded() < before + 1:
        assert time.monotonic() < deadline, "the task's success was not counted"
        time.sleep(1)


def protocol(host) -> str:
    return host.ansible.get_variables().get("app_protocol", "wsgi")


def deploy_probe(host, base: str = BASE) -> dict:
    return stackhelpers.deploy_probe(host, base)


def test_the_servers_workers_speak_the_protocol_asked(app_host):
    seen = deploy_probe(app_host)
    assert (seen["server"], seen["protocol"]) == ("gunicorn", protocol(app_host))
    if protocol(app_host) == "asgi":
        assert "uvicorn_worker.UvicornWorker" in app_host.file("/etc/pystack/gunicorn.conf.py").content_string


def test_the_async_view_awaits_redis_on_either_protocol(app_host):
    status, headers, body = get(app_host, BASE + "/api/async/redis?keys=20")
    assert status == 200, body
    seen = json.loads(body)
    assert (seen["protocol"], seen["keys"]) == (protocol(app_host), 20)
    assert seen["total"] >= 20
    assert headers["cache-control"] == "no-store"


def test_an_asgi_node_switches_to_granian_and_back(app_host):
    # One variable: gunicorn (uvicorn's worker) -> granian's ASGI interface,
    # same release and virtualenv packages but the server's, then back.
    name = app_host.backend.get_hostname()
    if name != "pystack-django-cpython":
        pytest.skip("the ASGI node")
    switched = run_playbook(APP_PLAYBOOK, {"app_server": "granian"}, "--limit", name)
    assert switched.rc == 0, switched.output
    private = f"http://{app_host.check_output('hostname -I').split()[0]}:8000"
    seen = deploy_probe(app_host, private)
    assert (seen["server"], seen["protocol"]) == ("granian", "asgi")
    status, _, body = get(app_host, private + "/api/async/redis?keys=5")
    assert status == 200, body
    assert json.loads(body)["protocol"] == "asgi"
    assert get(app_host, private + "/healthz")[0] == 200
    back = run_playbook(APP_PLAYBOOK, None, "--limit", name)
    assert back.rc == 0, back.output
    assert (deploy_probe(app_host)["server"], deploy_probe(app_host)["protocol"]) == ("gunicorn", "asgi")
