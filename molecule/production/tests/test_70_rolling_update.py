"""The team's next release (tag v1.1.0) rolled onto the app nodes with rolling_update.yml while
a client keeps writing and reading through both balancers: no request fails."""

from __future__ import annotations

from prod import APPS, PUBLIC, WORKER, call, current_release, inventory_dir, probe
from stackhelpers import PROJECT, Load, run_playbook


def version_through(url: str) -> str:
    return call("GET", url + "/")[1]["version"]


def test_a_new_release_rolls_through_both_balancers_without_a_failed_request(apps, worker):
    apps[0].run("runuser -u pystack-app -- sh -c 'echo kept > /opt/pystack/shared/uploads/avatar.txt'")
    before = {app: current_release(app) for app in apps}
    masters = {app: app.check_output("systemctl show -p MainPID --value pystack-app") for app in apps}
    assert {version_through(url) for url in PUBLIC} == {"1.0.0"}
    # The operator's change: the inventory now asks for v1.1.0 (later runs keep it).
    host_vars = inventory_dir() / "host_vars"
    host_vars.mkdir(exist_ok=True)
    for name in (*APPS, WORKER):
        (host_vars / f"{name}.yml").write_text("app_source_git_version: v1.1.0\n")
    targets = [f"{url}/" for url in PUBLIC] + [("POST", f"{url}/notes", {"body": "rolling"}) for url in PUBLIC]
    with Load(targets, rate=5) as load:
        rolled = run_playbook(PROJECT / "playbooks" / "rolling_update.yml")
    assert rolled.rc == 0, rolled.output[-4000:]
    assert len(load.ok()) > 100, load.summary()
    assert load.failed() == [], load.summary()
    assert {version_through(url) for url in PUBLIC} == {"1.1.0"}
    for app in apps:
        after = current_release(app)
        # New code in the same virtualenv: reloaded, not restarted, and the probe says so.
        assert after.split("-")[0] != before[app].split("-")[0]
        assert after.split("-", 1)[1] == before[app].split("-", 1)[1]
        assert probe(app)["release"] == after
        assert app.check_output("systemctl show -p MainPID --value pystack-app") == masters[app]
    assert apps[0].file("/opt/pystack/current/uploads/avatar.txt").content_string.strip() == "kept"
    assert current_release(worker).split("-")[0] == current_release(apps[0]).split("-")[0]
