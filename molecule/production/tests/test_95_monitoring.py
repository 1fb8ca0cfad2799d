"""One Prometheus sees every tier: every target up, each tier's own figures, an app node that
stops fires its alert (in Prometheus and Alertmanager) within the rule's `for:` plus a scrape and
an evaluation, and resolves once it is back; and a profile of a node under load, on demand."""

from __future__ import annotations

import glob
import json
import re
import shlex
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
from prod import APPS, LB, PUBLIC, vault
from stackhelpers import PROJECT, Load, run_playbook

# Every host runs the node exporter; each tier its own exporter. The example's balancers run
# HAProxy without nginx beside them (its app has no static files: nginx_static_enabled false),
# so there is no nginx exporter; the lab's smoke test (make lab) has one on lb1.
EXPECTED_TARGETS = {
    "node": 9,
    "postgres": 1,
    "pgbouncer": 1,
    "redis": 2,
    "haproxy": 2,
    "app": 2,
    "blackbox_https": 2,
    "prometheus": 1,
    "alertmanager": 1,
}


def seconds(duration: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(ms|s|m|h)", duration).groups()
    return float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


@pytest.fixture(scope="module")
def prometheus(monitoring):
    """GET of Prometheus' (9090) or Alertmanager's (9093) API, from the monitoring host itself."""
    address = monitoring.check_output("hostname -I").split()[0]

    def get(path: str, port: int = 9090) -> dict:
        return json.loads(monitoring.check_output(f"curl -sf -m 10 {shlex.quote(f'http://{address}:{port}{path}')}"))

    return get


def query(prometheus, expression: str) -> list[dict]:
    return prometheus(f"/api/v1/query?query={quote(expression, safe='')}")["data"]["result"]


def test_every_target_of_every_tier_is_up(prometheus):
    deadline = time.monotonic() + 120
    while True:
        targets = prometheus("/api/v1/targets?state=active")["data"]["activeTargets"]
        jobs = Counter(target["labels"]["job"] for target in targets)
        down = [
            (target["labels"]["job"], target["labels"]["instance"], target["lastError"])
            for target in targets
            if target["health"] != "up"
        ]
        if jobs == EXPECTED_TARGETS and not down:
            break
        assert time.monotonic() < deadline, (dict(jobs), down)
        time.sleep(5)


def test_each_tier_reports_its_own_figures(prometheus):
    def values(expression: str) -> dict[str, float]:
        return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in query(prometheus, expression)}

    assert list(values("pg_up").values()) == [1.0]
    assert list(values("pgbouncer_up").values()) == [1.0]
    assert sorted(values("redis_up").values()) == [1.0, 1.0]
    assert list(values("probe_success").values()) == [1.0, 1.0]
    # The certificate the balancers present (the vault's, valid 90 days).
    expiries = values("probe_ssl_earliest_cert_expiry - time()").values()
    assert expiries and all(80 * 86400 < left < 91 * 86400 for left in expiries), expiries
    # The app nodes answered the earlier tests' requests: counted by status, timed.
    answered = values('sum by (instance) (pystack_http_requests_total{status="2xx"})')
    assert len(answered) == 2 and all(count > 0 for count in answered.values()), answered
    assert values("sum(pystack_http_request_duration_seconds_count)")
    # The database's connections out of max_connections (pgbouncer's server connections at least).
    (share,) = values("sum(pg_stat_activity_count) / scalar(max(pg_settings_max_connections))").values()
    assert 0 < share < 1
    # HAProxy's view of the app nodes.
    assert len(values('haproxy_server_status{proxy="app",state="UP"} == 1')) == 2 * len(LB)


def test_the_redis_exporter_reads_every_instance_within_its_acl(prometheus, cache):
    # Its scrapes, the queue keys' lengths among them, ran without an error and without a
    # command the monitoring user may not run (Redis logs each denial in ACL LOG).
    errors = query(prometheus, "redis_exporter_last_scrape_error")
    assert len(errors) == 2 and all(float(r["value"][1]) == 0 for r in errors), errors
    password = vault()["vault_redis_admin_password"]
    for port in (6379, 6380):
        denials = cache.check_output(f"REDISCLI_AUTH={shlex.quote(password)} redis-cli --user admin -p {port} ACL LOG")
        assert "monitor" not in denials, denials


def unit_of(app) -> str:
    facts = app.check_output("cat /etc/ansible/facts.d/app_*.fact")
    return json.loads(facts)["unit"].removesuffix(".service")


def firing(prometheus, name: str, instance: str) -> bool:
    alerts = prometheus("/api/v1/alerts")["data"]["alerts"]
    return any(
        a["labels"]["alertname"] == name and a["labels"].get("instance") == instance and a["state"] == "firing"
        for a in alerts
    )


def test_an_app_node_that_stops_fires_its_alert_then_resolves(prometheus, apps):
    config = prometheus("/api/v1/status/config")["data"]["yaml"]
    scrape = seconds(re.search(r"scrape_interval: (\S+)", config).group(1))
    evaluation = seconds(re.search(r"evaluation_interval: (\S+)", config).group(1))
    rules = prometheus("/api/v1/rules?type=alert")["data"]["groups"]
    rule = next(r for g in rules for r in g["rules"] if r["name"] == "AppNodeDown")
    hold = rule["duration"]
    app, name = apps[0], APPS[0]
    unit = unit_of(app)
    assert not firing(prometheus, "AppNodeDown", name)

    # The server and its socket (a socket alone would start it again at the next check).
    app.check_output(f"sudo systemctl stop {unit}.socket {unit}.service")
    stopped = time.monotonic()
    try:
        while not firing(prometheus, "AppNodeDown", name):
            # A failed scrape (one interval at most), the rule's for:, an evaluation.
            assert time.monotonic() - stopped < hold + scrape + evaluation + 5, "AppNodeDown did not fire"
            time.sleep(1)
        fired = time.monotonic() - stopped
        # Not before the rule's for: (a rule that lost it would page at the first failed scrape).
        assert fired >= hold, fired
        # Alertmanager has it too (where receivers would send it).
        deadline = time.monotonic() + 30
        while not any(
            a["labels"]["alertname"] == "AppNodeDown" and a["labels"].get("instance") == name
            for a in prometheus("/api/v2/alerts?active=true", port=9093)
        ):
            assert time.monotonic() < deadline, "Alertmanager did not get AppNodeDown"
            time.sleep(1)
    finally:
        app.check_output(f"sudo systemctl start {unit}.socket {unit}.service")
    started = time.monotonic()
    while firing(prometheus, "AppNodeDown", name):
        assert time.monotonic() - started < scrape + evaluation + 10, "AppNodeDown did not resolve"
        time.sleep(1)
    resolved = time.monotonic() - started
    print(f"AppNodeDown fired {fired:.0f} s after the stop (for: {hold} s), resolved {resolved:.0f} s after the start")


def test_a_profile_of_a_node_under_load_comes_back_as_a_flame_graph(tmp_path: Path):
    with Load([f"{url}/" for url in PUBLIC], rate=20):
        run = run_playbook(
            PROJECT / "playbooks" / "profile.yml",
            {"profile_seconds": 10, "profile_dest": str(tmp_path)},
            "--limit",
            APPS[0],
        )
    assert run.rc == 0, run.output[-3000:]
    graphs = glob.glob(str(tmp_path / "*.svg"))
    assert len(graphs) == 1, graphs
    svg = Path(graphs[0]).read_text()
    assert svg.lstrip().startswith(("<?xml", "<svg")) and "</svg>" in svg
    # Stacks of the serving workers: the app's own code (notes/wsgi.py) under gunicorn.
    assert "wsgi" in svg and "gunicorn" in svg, svg[:2000]


def test_profiling_a_pypy_node_is_refused_before_anything_changes(tmp_path: Path):
    run = run_playbook(
        PROJECT / "playbooks" / "profile.yml",
        {"profile_seconds": 5, "profile_dest": str(tmp_path)},
        "--limit",
        APPS[1],
    )
    assert run.rc != 0
    assert "pypy" in run.output.lower() and "py-spy" in run.output.lower(), run.output[-3000:]
    assert not list(tmp_path.glob("*.svg"))
