"""What the production scenario's suites share: its hosts, its public URLs, its vault."""

from __future__ import annotations

import json
import os
import ssl
import urllib.request
from pathlib import Path

from stackhelpers import env_file, http, scenario_host
from vaultfile import read

LB = ("pystack-prod-lb1", "pystack-prod-lb2")
APPS = ("pystack-prod-app1", "pystack-prod-app2")
WORKER = "pystack-prod-worker1"
DB = "pystack-prod-db1"
POOLER = "pystack-prod-pgbouncer1"
CACHE = "pystack-prod-cache1"
MONITORING = "pystack-prod-monitoring1"
# Both balancers' HTTPS, published on the controller's loopback (molecule.yml).
PUBLIC = ("https://127.0.0.1:18441", "https://127.0.0.1:18442")
SCENARIO = Path(__file__).resolve().parents[1]
VAULT = SCENARIO / "group_vars" / "all" / "vault.yml"
VAULT_PASSWORD = SCENARIO / "vault-password"
LOCAL = "http://127.0.0.1:8000"


def vault() -> dict[str, str]:
    """The secrets as the encrypted vault.yml holds them now."""
    return read(VAULT, VAULT_PASSWORD)


def psql(host, query: str, database: str = "app") -> str:
    """A query as postgres on the db host."""
    db = scenario_host(host, DB)
    out = db.run(f"runuser -u postgres -- psql -X -A -t -d {database} -c {json.dumps(query)}")
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def probe(host) -> dict:
    """What the node's serving workers report (the app role's probe, with the node's token)."""
    token = env_file(host)["PYSTACK_PROBE_TOKEN"]
    status, _, body = http(host, LOCAL + "/.pystack/deploy", options=("-H", f"X-Pystack-Probe: {token}"))
    assert status == 200, body
    return json.loads(body)


def current_release(host) -> str:
    return host.check_output("basename $(readlink /opt/pystack/current)")


def inventory_dir() -> Path:
    return Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent


def call(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    """One JSON request from the controller (through a balancer): status and decoded body."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, context=ssl._create_unverified_context(), timeout=20) as answer:
        return answer.status, json.loads(answer.read())
