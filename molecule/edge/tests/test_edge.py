"""The edge as its users see it: each lb host (one per lb_engine) spreads
requests over both app nodes, keeps answering while one is down, speaks only
TLS 1.2/1.3, serves the app's static files as a CDN origin, and refuses
configuration that would break it while it keeps serving the old one."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
import testinfra
from stackhelpers import PROJECT, env_file, http, run_playbook, write_items

EDGE = PROJECT / "playbooks" / "edge.yml"
BASE = "https://127.0.0.1"
APP_UNITS = "pystack-app.socket pystack-app.service"


# The scenario's inventory directory: molecule's file plus the linked hosts file
# (lb_engine per host) and group_vars.
INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent


def inventory_host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def edge_playbook(extra: dict, limit: str):
    return run_playbook(EDGE, extra, "--limit", limit)


def secret(name: str) -> str:
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets" / name
    return path.read_text().split()[0]


def curl(host, url: str, *options: str, body: bool = True) -> tuple[int, dict[str, str], str]:
    """One request from the lb host itself (self-signed certificate: -k)."""
    return http(host, url, insecure=True, options=options, read_body=body)


def runtime_hosts(host, count: int) -> list[str]:
    seen = []
    for _ in range(count):
        status, _, body = curl(host, BASE + "/runtime")
        assert status == 200, body
        seen.append(json.loads(body)["host"])
    return seen


def app_hostnames() -> set[str]:
    names = ["pystack-edge-app1", "pystack-edge-app2"]
    return {inventory_host(n).check_output("hostname") for n in names}


@pytest.fixture
def lb(host):
    variables = host.ansible.get_variables()
    if "lb" not in variables["group_names"]:
        pytest.skip("lb hosts only")
    host.engine = variables["lb_engine"]
    return host


@pytest.fixture
def haproxy_lb(lb):
    if lb.engine != "haproxy":
        pytest.skip("HAProxy only")
    return lb


def test_the_chosen_engine_balances(lb):
    assert lb.service(lb.engine).is_running
    assert lb.socket("tcp://0.0.0.0:443").is_listening
    if lb.engine == "haproxy":
        # nginx is the static origin on loopback only.
        assert lb.service("nginx").is_running
        assert lb.socket("tcp://127.0.0.1:8081").is_listening
    else:
        assert not lb.service("haproxy").is_running
        assert not lb.socket("tcp://127.0.0.1:8081").is_listening


def test_requests_reach_both_app_nodes(lb):
    assert set(runtime_hosts(lb, 20)) == app_hostnames()


def test_http_redirects_to_https_and_forwarded_headers_are_set(lb):
    status, headers, _ = curl(lb, "http://127.0.0.1/runtime")
    assert status == 301
    assert headers["location"].startswith("https://")
    # The app sees the scheme through X-Forwarded-Proto (Django's secure request).
    status, _, body = curl(lb, BASE + "/runtime")
    assert status == 200, body


def test_a_stopped_app_node_costs_no_request(lb):
    app1 = inventory_host("pystack-edge-app1")
    try:
        app1.check_output(f"systemctl stop {APP_UNITS}")
        failures = []
        # Longer than a health-check interval times fall (2 s x 2) and nginx's fail_timeout window.
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            status, _, body = curl(lb, BASE + "/runtime")
            if status != 200:
                failures.append((status, body[:200]))
        assert not failures
        assert set(runtime_hosts(lb, 6)) == {inventory_host("pystack-edge-app2").check_output("hostname")}
    finally:
        app1.check_output(f"systemctl start {APP_UNITS}")
    # Back in rotation once its health checks pass again (nginx: after fail_timeout).
    deadline = time.monotonic() + 60
    while set(runtime_hosts(lb, 6)) != app_hostnames():
        assert time.monotonic() < deadline, "app1 did not come back"
        time.sleep(2)


@pytest.mark.parametrize(("option", "protocol"), [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_tls_1_2_and_1_3_are_accepted(lb, option, protocol):
    out = lb.run(f"openssl s_client -connect 127.0.0.1:443 {option} </dev/null")
    assert re.search(rf"^New, {re.escape(protocol)}, Cipher is (?!\(NONE\))", out.stdout, re.MULTILINE), out.stderr


@pytest.mark.parametrize("option", ["-tls1", "-tls1_1"])
def test_tls_1_0_and_1_1_are_refused(lb, option):
    # OpenSSL 3 refuses these client-side at its default security level: lower it,
    # so that the refusal seen is the server's.
    out = lb.run(f"openssl s_client -connect 127.0.0.1:443 {option} -cipher DEFAULT@SECLEVEL=0 </dev/null")
    assert out.rc != 0
    assert "alert protocol version" in out.stderr
    assert "Cipher is (NONE)" in out.stdout


def test_stats_need_credentials_and_metrics_answer(haproxy_lb):
    auth = haproxy_lb.check_output("awk '/stats auth/ {print $3}' /etc/haproxy/haproxy.cfg")
    status, _, _ = curl(haproxy_lb, "http://127.0.0.1:8404/stats")
    assert status == 401
    status, _, _ = curl(haproxy_lb, "http://127.0.0.1:8404/stats", "-u", "admin:wrong-password")
    assert status == 401
    status, _, body = curl(haproxy_lb, "http://127.0.0.1:8404/stats", "-u", auth)
    assert status == 200
    assert "pystack-edge-app1" in body
    status, _, body = curl(haproxy_lb, "http://127.0.0.1:8404/metrics")
    assert status == 200
    assert 'haproxy_server_status{proxy="app",server="pystack-edge-app1"' in body


def test_runtime_api_socket_is_admin(haproxy_lb):
    out = haproxy_lb.check_output("echo 'show servers state app' | socat stdio /run/haproxy/admin.sock")
    assert "pystack-edge-app1" in out and "pystack-edge-app2" in out
    # Admin level: drain and ready are accepted.
    cmd = "echo 'set server app/pystack-edge-app2 state {}' | socat stdio /run/haproxy/admin.sock"
    assert haproxy_lb.check_output(cmd.format("drain")) == ""
    assert haproxy_lb.check_output(cmd.format("ready")) == ""


def test_per_server_maxconn_follows_the_app_workers(haproxy_lb):
    cores = int(inventory_host("pystack-edge-app1").check_output("nproc"))
    config = haproxy_lb.file("/etc/haproxy/haproxy.cfg").content_string
    assert re.search(rf"server pystack-edge-app1 \S+:8000 maxconn {2 * cores + 1}$", config, re.MULTILINE)


def test_access_log_has_timings(lb):
    curl(lb, BASE + "/runtime")
    if lb.engine == "haproxy":
        log = lb.check_output("journalctl -u haproxy --no-pager -n 20")
        assert re.search(r"TR=\d+ Tw=\d+ Tc=\d+ Tr=\d+ Ta=\d+ 200", log)
    else:
        log = lb.check_output("tail -n 5 /var/log/nginx/access.log")
        assert re.search(r"rt=[\d.]+ uct=[\d.]+ uht=[\d.]+ urt=[\d.]+", log)


def static_asset(lb) -> str:
    names = lb.check_output("ls /var/www/pystack-static/current/css").split()
    hashed = [n for n in names if re.fullmatch(r"site\.[0-9a-f]{12}\.css", n)]
    assert hashed, names
    return BASE + "/static/css/" + hashed[0]


def test_static_origin_needs_the_cdn_secret(lb):
    status, _, _ = curl(lb, static_asset(lb))
    assert status == 403


def test_static_assets_are_immutable_compressed_and_conditional(lb):
    url = static_asset(lb)
    header = "X-Origin-Secret: " + secret("edge_origin_secret")
    status, headers, body = curl(lb, url, "-H", header)
    assert status == 200
    assert "body" in body
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "etag" in headers and "last-modified" in headers
    for encoding in ("gzip", "br"):
        status, headers, _ = curl(lb, url, "-H", header, "-H", f"Accept-Encoding: {encoding}", body=False)
        assert status == 200
        assert headers.get("content-encoding") == encoding
        assert "Accept-Encoding" in headers.get("vary", "")
    status, headers, _ = curl(lb, url, "-H", header)
    status, _, _ = curl(lb, url, "-H", header, "-H", f"If-None-Match: {headers['etag']}")
    assert status == 304
    status, _, _ = curl(lb, url, "-H", header, "-H", f"If-Modified-Since: {headers['last-modified']}")
    assert status == 304


def test_a_broken_config_fails_and_the_old_one_keeps_serving(lb):
    name = lb.backend.get_hostname()
    if lb.engine == "haproxy":
        extra, config = {"haproxy_extra_global_config": "this is not a directive"}, "/etc/haproxy/haproxy.cfg"
    else:
        extra, config = {"nginx_extra_http_config": "this is not a directive;"}, "/etc/nginx/nginx.conf"
    before = lb.file(config).content_string
    run = edge_playbook(extra, f"app:{name}")
    assert run.rc != 0, run.output
    assert run.recap()[name]["failed"] == 1
    assert "Render " in run.output and "failed" in run.output
    assert lb.file(config).content_string == before
    assert set(runtime_hosts(lb, 10)) == app_hostnames()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"lb_engine": "traefik"}, "lb_engine is 'traefik'; allowed: haproxy, nginx"),
        ({"haproxy_balance": "fastest"}, "haproxy_balance"),
        ({"lb_engine": "nginx", "nginx_balance": "fastest"}, "nginx_balance"),
    ],
)
def test_bad_input_is_refused_before_any_change(haproxy_lb, extra, message):
    run = edge_playbook(extra, f"app:{haproxy_lb.backend.get_hostname()}")
    assert run.rc != 0
    assert message in run.output
    assert "fastest" in run.output or "traefik" in run.output
    assert run.changed() == 0


@pytest.mark.parametrize("name", ["pystack-edge-app1", "pystack-edge-app2"])
def test_no_prepared_statements_through_a_pgbouncer_that_cannot_keep_them(host, name):
    # Debian 12's pgbouncer 1.18 loses a prepared statement when the next
    # transaction runs on another server connection; its local fact says so,
    # and the app role then renders psycopg's prepare threshold off. Many
    # writes from every worker, all answered.
    if host.backend.get_hostname() != "pystack-edge-lb-haproxy":
        pytest.skip("run once")
    app = inventory_host(name)
    env = env_file(app)
    assert env["DB_PREPARE_THRESHOLD"] == "off", env
    write_items(app, "http://127.0.0.1:8000", 60, "edge")


def test_prepared_statements_are_refused_on_debian_12s_pgbouncer(host):
    # pgbouncer 1.18 has no max_prepared_statements: asking for it stops the
    # data tier's play before anything changes, naming the version.
    if host.backend.get_hostname() != "pystack-edge-lb-haproxy":
        pytest.skip("run once")
    # The db host and its clients (whose addresses its checks need), the pooler's part only.
    run = run_playbook(
        PROJECT / "playbooks" / "data.yml",
        {"pgbouncer_max_prepared_statements": 50},
        "--limit",
        "pystack-edge-db1:app",
        "--tags",
        "pgbouncer",
    )
    assert run.rc != 0, run.output
    text = " ".join(run.output.split())
    assert "pgbouncer_max_prepared_statements is 50" in text, run.output
    assert "pgbouncer 1.18" in text and "1.21 or later" in text, run.output
    assert run.recap(), run.output
    assert run.changed() == 0, run.output


# A bounded client on each balancer host, against its own engine: 10 requests a
# second, at most 15 minutes, until /tmp/load.stop appears.
LOAD_CLIENT = r"""
import json, os, ssl, sys, time, urllib.request
rate, limit, url = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
ctx = ssl._create_unverified_context()
ok, failed, errors, start = 0, 0, {}, time.monotonic()
while time.monotonic() - start < limit and not os.path.exists("/tmp/load.stop"):
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=30) as r:
            ok += r.status == 200
            failed += r.status != 200
    except Exception as exc:
        failed += 1
        errors[repr(exc)[:120]] = errors.get(repr(exc)[:120], 0) + 1
    time.sleep(max(0.0, 1 / rate - (time.monotonic() - t0)))
json.dump({"ok": ok, "failed": failed, "errors": errors}, open("/tmp/load.json", "w"))
"""


def test_switching_a_nodes_server_rolls_through_both_engines_without_a_failed_request(host):
    # The operator's change: app1 moves from gunicorn to granian in the inventory. A new
    # server is a restart, not a reload: rolling_update.yml drains the node from both
    # engines first. Last in this file: app1 stays on granian.
    if host.backend.get_hostname() != "pystack-edge-lb-haproxy":
        pytest.skip("run once")
    balancers = [inventory_host(n) for n in ("pystack-edge-lb-haproxy", "pystack-edge-lb-nginx")]
    host_vars = INVENTORY / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / "pystack-edge-app1.yml").write_text("app_server: granian\n")
    for lb in balancers:
        lb.run("rm -f /tmp/load.stop /tmp/load.json")
        lb.run(f"cat > /tmp/load.py <<'EOF'\n{LOAD_CLIENT}\nEOF")
        lb.run(f"nohup python3 /tmp/load.py 10 900 {BASE}/runtime > /tmp/load.log 2>&1 &")
    try:
        rolled = run_playbook(PROJECT / "playbooks" / "rolling_update.yml")
    finally:
        for lb in balancers:
            lb.run("touch /tmp/load.stop")
    assert rolled.rc == 0, rolled.output[-4000:]
    for lb in balancers:
        deadline = time.monotonic() + 60
        while not lb.file("/tmp/load.json").exists and time.monotonic() < deadline:
            time.sleep(1)
        load = json.loads(lb.file("/tmp/load.json").content_string)
        assert load["ok"] > 100, load
        assert load["failed"] == 0, load
    servers = {}
    for _ in range(20):
        seen = json.loads(curl(balancers[0], BASE + "/runtime")[2])
        servers[seen["host"]] = seen["server"]
    app1, app2 = (inventory_host(n).check_output("hostname") for n in ("pystack-edge-app1", "pystack-edge-app2"))
    assert servers == {app1: "granian", app2: "gunicorn"}
