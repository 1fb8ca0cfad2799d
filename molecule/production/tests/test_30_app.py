"""The team's app on both app nodes, as the example's group_vars and its canary host var ask."""

from __future__ import annotations

from prod import POOLER, current_release, probe
from stackhelpers import env_file


def test_the_deploy_proved_the_release_interpreter_and_server(apps):
    for app, want in zip(apps, ("cpython", "pypy"), strict=True):
        assert app.ansible.get_variables()["app_interpreter"] == want
        seen = probe(app)
        assert seen["release"] == current_release(app)
        assert (seen["interpreter"], seen["jit"], seen["server"]) == (want, want == "pypy", "gunicorn")


def test_the_app_reaches_pgbouncer_on_its_own_host_and_redis(apps):
    for app in apps:
        env = env_file(app)
        assert env["DATABASE_URL"].startswith("postgresql://app:")
        assert env["DATABASE_URL"].endswith(f"@{POOLER}:6432/app")
        assert env["REDIS_URL"].endswith("@pystack-prod-cache1:6379")
        assert env["RQ_REDIS_URL"] == env["REDIS_DURABLE_URL"]
        assert env["FLASK_APP"] == "wsgi:app"


def test_pypy_runs_the_psycopg2_app_unmodified(apps):
    python = "/opt/pystack/current/venv/bin/python"
    out = apps[1].check_output(
        f"{python} -c 'import psycopg2, platform; print(psycopg2.__name__, platform.python_implementation())'"
    )
    assert out.split() == ["psycopg2cffi", "PyPy"]
