"""A team's broken release is refused while the old one keeps answering; bad input is refused
before any change."""

from __future__ import annotations

import pytest
from prod import APPS, LOCAL, WORKER, current_release, probe
from stackhelpers import APP_PLAYBOOK, PROJECT, run_playbook


@pytest.mark.parametrize(
    ("branch", "needles"),
    [
        ("broken-import", ["ModuleNotFoundError", "notes_helpers_we_forgot"]),
        ("broken-health", ["app_health_path", "/health", "503"]),
        ("broken-requirement", ["pip could not install", "notes-internal-lib"]),
    ],
)
def test_a_broken_release_is_refused_while_the_old_one_keeps_answering(apps, branch, needles):
    app = apps[0]
    before = current_release(app)
    app.run(
        "rm -f /tmp/codes; (for i in $(seq 600); do curl -s -m 10 -o /dev/null -w '%{http_code}\\n' "
        f"{LOCAL}/health >> /tmp/codes; sleep 0.2; done) > /dev/null 2>&1 & echo $! > /tmp/loop.pid"
    )
    try:
        run = run_playbook(APP_PLAYBOOK, {"app_source_git_version": branch}, "--limit", APPS[0])
    finally:
        app.run("kill $(cat /tmp/loop.pid)")
    assert run.rc != 0, run.output
    for needle in [APPS[0], "not switched", *needles]:
        assert needle in run.output, (needle, run.output[-3000:])
    assert current_release(app) == before
    codes = app.file("/tmp/codes").content_string.split()
    assert codes and set(codes) == {"200"}, {c: codes.count(c) for c in set(codes)}
    assert probe(app)["release"] == before


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        ({"app_prepare_commands": "flask routes"}, ["app_prepare_commands", "a list of command lines"]),
        ({"app_framework": "rails"}, ["app_framework", "flask, django, wsgi"]),
        ({"app_source_git_version": "v9.9.9"}, ["Fetch the app from git", "v9.9.9"]),
        ({"app_requirements": "requirements/prod.txt"}, ["app_requirements", "requirements/prod.txt"]),
        ({"app_module": "wsgi"}, ["app_module", "module:callable"]),
        ({"app_migrate_command": ["flask", "db", "upgrade"]}, ["app_migrate_command", "one command line"]),
    ],
)
def test_bad_input_is_refused_before_any_change(extra, needles):
    run = run_playbook(APP_PLAYBOOK, extra, "--limit", APPS[0])
    assert run.rc != 0
    for needle in needles:
        assert needle in run.output, (needle, run.output[-3000:])
    assert run.recap(), run.output
    assert run.changed() == 0, run.output


def test_a_worker_host_without_a_command_is_refused():
    run = run_playbook(PROJECT / "playbooks" / "worker.yml", {"app_worker_command": ""}, "--limit", WORKER)
    assert run.rc != 0
    assert "app_worker_command is empty" in run.output and "app_celery_app" in run.output, run.output[-3000:]
    assert run.changed() == 0, run.output
