"""--check --diff on the converged stack: nothing would change but what the operator changed,
and that change is shown, not made. One run asks both (a check of the whole stack takes two
minutes here): the inventory now says 31 s for HAProxy's queue timeout."""

from __future__ import annotations

import re

from stackhelpers import PROJECT, run_playbook

SITE = PROJECT / "playbooks" / "site.yml"
LBS = {"pystack-prod-lb1", "pystack-prod-lb2"}


def changed_tasks(output: str) -> set[str]:
    """The names of the tasks that reported `changed` for some host."""
    seen, task = set(), ""
    for line in output.splitlines():
        if match := re.match(r"^(?:TASK|RUNNING HANDLER) \[(.*)\]", line):
            task = match[1]
        elif line.startswith("changed:"):
            seen.add(task)
    return seen


def test_check_mode_shows_the_one_change_and_makes_nothing(lbs):
    before = [lb.file("/etc/haproxy/haproxy.cfg").content_string for lb in lbs]
    assert all("timeout queue 30s" in config for config in before)
    run = run_playbook(SITE, {"haproxy_timeout_queue": "31s"}, "--check", "--diff")
    assert run.rc == 0, run.output[-3000:]
    recap = run.recap()
    assert len(recap) == 10, recap  # the nine hosts and the controller (retire_credentials.yml)
    # Every other host: nothing would change.
    assert {host for host, counts in recap.items() if counts["changed"]} == LBS, run.output[-3000:]
    # On the balancers: the file, with its diff, and the reload it would take; nothing else.
    assert "-    timeout queue 30s\n+    timeout queue 31s" in run.output
    tasks = changed_tasks(run.output)
    assert "haproxy : Render haproxy.cfg" in tasks, run.output
    # (The reload is a handler; ansible prints it under the flush that runs it.)
    allowed = {"haproxy : Render haproxy.cfg", "haproxy : Reload haproxy", "haproxy : Apply the configuration"}
    assert tasks <= allowed, tasks
    assert [lb.file("/etc/haproxy/haproxy.cfg").content_string for lb in lbs] == before
