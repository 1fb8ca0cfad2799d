"""A team's own app (teamapp/), deployed with inventory variables only: nothing of
this project in it, no /runtime. The deploy itself proves what serves; rows and jobs go
through the balancer into PostgreSQL and the RQ worker; a broken release is refused."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import pytest
from stackhelpers import converge_playbook, env_file, http, run_playbook

LB = "https://127.0.0.1"
LOCAL = "http://127.0.0.1:8000"
APPS = ("pystack-own-cpython", "pystack-own-pypy")
TEAMAPP = Path(__file__).resolve().parents[1] / "teamapp"


def other(host, name: str):
    return host.get_host(f"ansible://{name}", ansible_inventory=host.backend.ansible_inventory)


def only(host, *names: str):
    if host.backend.get_hostname() not in names:
        pytest.skip(f"{', '.join(names)} only")
    return host


def psql(host, query: str) -> str:
    db = other(host, "pystack-own-data")
    out = db.run(f"runuser -u postgres -- psql -X -A -t -d app -c {json.dumps(query)}")
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def probe(host, token: str | None = None) -> tuple[int, str]:
    if token is None:
        token = env_file(host)["PYSTACK_PROBE_TOKEN"]
    status, _, body = http(host, LOCAL + "/.pystack/deploy", options=("-H", f"X-Pystack-Probe: {token}"))
    return status, body


def current_release(host) -> str:
    return host.check_output("basename $(readlink /opt/pystack/current)")


def test_the_deploy_verified_interpreter_and_release_without_the_apps_help(host):
    only(host, *APPS)
    want = host.ansible.get_variables()["app_interpreter"]
    status, body = probe(host)
    assert status == 200, body
    seen = json.loads(body)
    assert seen["release"] == current_release(host)
    assert (seen["interpreter"], seen["jit"], seen["server"]) == (want, want == "pypy", "gunicorn")
    # The app itself has no such endpoint: without the token the request is the app's (404).
    assert probe(host, "wrong")[0] == 404
    assert http(host, LOCAL + "/runtime")[0] == 404


def test_the_probe_does_not_answer_through_the_balancer(host):
    only(host, "pystack-own-lb")
    token = env_file(other(host, APPS[0]))["PYSTACK_PROBE_TOKEN"]
    for _ in range(4):
        status, _, _ = http(host, LB + "/.pystack/deploy", insecure=True, options=("-H", f"X-Pystack-Probe: {token}"))
        assert status == 404


def test_settings_come_in_the_names_apps_read(host):
    only(host, *APPS)
    env = env_file(host)
    assert env["DATABASE_URL"].startswith("postgresql://app:")
    assert env["DATABASE_URL"].endswith("@pystack-own-data:6432/app")
    assert env["REDIS_URL"].startswith("redis://app:") and env["REDIS_URL"].endswith(":6379")
    assert env["RQ_REDIS_URL"] == env["CELERY_BROKER_URL"] == env["REDIS_DURABLE_URL"]
    assert env["RQ_REDIS_URL"].endswith(":6380")
    assert env["FLASK_APP"] == "wsgi:app"


def test_pypy_runs_the_psycopg2_app_unmodified(host):
    only(host, "pystack-own-pypy")
    python = "/opt/pystack/current/venv/bin/python"
    out = host.check_output(
        f"{python} -c 'import psycopg2, platform; print(psycopg2.__name__, platform.python_implementation())'"
    )
    assert out.split() == ["psycopg2cffi", "PyPy"]
    swapped = host.file("/opt/pystack/current/.pystack-pypy-requirements.txt").content_string
    assert "psycopg2cffi" in swapped and "psycopg2-binary" not in swapped.split("swapped out")[0]


def test_rows_written_through_the_balancer_land_in_postgresql(host):
    only(host, "pystack-own-lb")
    tag = f"lb-{uuid.uuid4().hex[:8]}"
    for i in range(20):
        status, _, body = http(host, LB + "/notes", "POST", {"body": f"{tag}-{i}"}, insecure=True)
        assert status == 201, body
    assert psql(host, f"SELECT count(*) FROM notes WHERE body LIKE '{tag}-%'") == "20"
    # Both nodes served some of them: the CPython one and the PyPy one.
    for name in APPS:
        log = other(host, name).check_output(
            "journalctl -u pystack-app --no-pager -o cat | grep -c 'POST /notes' || true"
        )
        assert int(log or 0) > 0, name


def test_the_rq_worker_consumes_a_job(host):
    only(host, "pystack-own-lb")
    status, _, body = http(host, LB + "/notes", "POST", {"body": "for the worker"}, insecure=True)
    assert status == 201, body
    note = json.loads(body)["id"]
    status, _, body = http(host, LB + "/jobs", "POST", {"note_id": note}, insecure=True)
    assert status == 202, body
    deadline = time.monotonic() + 60
    while not (seen := psql(host, f"SELECT processed_by FROM note_stats WHERE note_id = {note}")):
        assert time.monotonic() < deadline, "the worker did not run the job"
        time.sleep(1)
    assert seen == other(host, "pystack-own-worker").check_output("hostname")


def test_the_worker_runs_the_release_of_the_app_nodes(host):
    only(host, "pystack-own-worker")
    assert host.service("pystack-worker").is_running
    pid = host.check_output("systemctl show -p MainPID --value pystack-worker")
    # As the app user: root in a container may not read another user's /proc/PID/cwd.
    cwd = host.check_output(f"runuser -u pystack-app -- readlink -f /proc/{pid}/cwd")
    assert cwd == host.check_output("readlink -f /opt/pystack/current")
    # The same code as the app nodes (the PyPy one: the CPython one gets a new release in a test).
    app = other(host, APPS[1])
    assert current_release(host).split("-", 1)[0] == current_release(app).split("-", 1)[0]


def broken_copy(tmp_path: Path, how: str) -> Path:
    src = tmp_path / "teamapp"
    shutil.copytree(TEAMAPP, src, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
    if how == "import":
        wsgi = src / "wsgi.py"
        wsgi.write_text("import teamapp_helpers_we_forgot  # noqa: F401\n" + wsgi.read_text())
    elif how == "health":
        views = src / "teamapp" / "views.py"
        views.write_text(views.read_text().replace('checks["database"] = "ok"', 'checks["database"] = "broken"'))
    elif how == "requirement":
        reqs = src / "requirements.txt"
        reqs.write_text(reqs.read_text() + "teamapp-internal-lib==9.9.9\n")
    return src


@pytest.mark.parametrize(
    ("how", "needles"),
    [
        ("import", ["ModuleNotFoundError", "teamapp_helpers_we_forgot"]),
        ("health", ["app_health_path", "/health", "503"]),
        ("requirement", ["pip could not install", "teamapp-internal-lib"]),
    ],
)
def test_a_broken_release_is_refused_while_the_old_one_keeps_answering(host, tmp_path, how, needles):
    only(host, APPS[0])
    name = APPS[0]
    before = current_release(host)
    host.run(
        "rm -f /tmp/codes; (for i in $(seq 600); do curl -s -m 10 -o /dev/null -w '%{http_code}\\n' "
        f"{LOCAL}/health >> /tmp/codes; sleep 0.2; done) > /dev/null 2>&1 & echo $! > /tmp/loop.pid"
    )
    try:
        run = run_playbook(converge_playbook(), {"app_source_path": str(broken_copy(tmp_path, how))}, "--limit", name)
    finally:
        host.run("kill $(cat /tmp/loop.pid)")
    assert run.rc != 0, run.output
    for needle in [name, "not switched", *needles]:
        assert needle in run.output, (needle, run.output[-3000:])
    assert current_release(host) == before
    codes = host.file("/tmp/codes").content_string.split()
    assert codes and set(codes) == {"200"}, {c: codes.count(c) for c in set(codes)}
    status, body = probe(host)
    assert status == 200 and json.loads(body)["release"] == before


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        ({"app_prepare_commands": "flask routes"}, ["app_prepare_commands", "a list of command lines"]),
        ({"app_framework": "rails"}, ["app_framework", "flask, django, wsgi"]),
        ({"app_source_path": "/nonexistent/teamapp"}, ["app_source_path", "/nonexistent/teamapp"]),
        ({"app_requirements": "requirements/prod.txt"}, ["app_requirements", "requirements/prod.txt"]),
        ({"app_module": "wsgi"}, ["app_module", "module:callable"]),
        ({"app_migrate_command": ["flask", "db", "upgrade"]}, ["app_migrate_command", "one command line"]),
    ],
)
def test_bad_input_is_refused_before_any_change(host, extra, needles):
    name = only(host, APPS[0]).backend.get_hostname()
    run = run_playbook(converge_playbook(), extra, "--limit", name)
    assert run.rc != 0
    for needle in needles:
        assert needle in run.output, (needle, run.output[-3000:])
    assert run.recap(), run.output
    assert run.changed() == 0, run.output


def test_a_worker_host_without_a_command_is_refused(host):
    name = only(host, "pystack-own-worker").backend.get_hostname()
    run = run_playbook(converge_playbook(), {"app_worker_command": ""}, "--limit", name)
    assert run.rc != 0
    assert "app_worker_command is empty" in run.output and "app_celery_app" in run.output, run.output[-3000:]
    assert run.changed() == 0, run.output


def test_a_new_release_switches_gracefully_and_keeps_the_shared_folders(host, tmp_path):
    only(host, APPS[0])
    assert host.check_output("readlink /opt/pystack/current/uploads") == "/opt/pystack/shared/uploads"
    assert host.file("/opt/pystack/shared/uploads").user == "pystack-app"
    assert "/opt/pystack/shared" in host.check_output("systemctl show -p ReadWritePaths --value pystack-app")
    host.run("runuser -u pystack-app -- sh -c 'echo kept > /opt/pystack/shared/uploads/avatar.txt'")
    before = current_release(host)
    master = host.check_output("systemctl show -p MainPID --value pystack-app")
    src = tmp_path / "teamapp"
    shutil.copytree(TEAMAPP, src, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
    (src / "CHANGELOG.md").write_text("1.0.1: a new release\n")
    run = run_playbook(converge_playbook(), {"app_source_path": str(src)}, "--limit", host.backend.get_hostname())
    assert run.rc == 0, run.output[-3000:]
    after = current_release(host)
    # New code, same virtualenv: a new release, reloaded (not restarted), proven by the probe.
    assert after != before and after.split("-", 1)[1] == before.split("-", 1)[1]
    assert host.check_output("systemctl show -p MainPID --value pystack-app") == master
    assert json.loads(probe(host)[1])["release"] == after
    assert host.file("/opt/pystack/current/uploads/avatar.txt").content_string == "kept\n"
