"""Helpers shared by the testinfra suites of every scenario.

Molecule runs the verifier with the scenario's inventory and ansible.cfg in
the environment; these helpers reuse them to run playbooks the way an
operator would (for example with bad input, to see it refused).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[3]
# A deploy to some app nodes is the app tier's own playbook with --limit, as an
# operator runs it: site.yml would take the same app role through the other
# tiers' plays first, changing nothing there.
APP_PLAYBOOK = PROJECT / "playbooks" / "app.yml"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class PlaybookRun:
    rc: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        """Per-host counters from the PLAY RECAP lines."""
        result: dict[str, dict[str, int]] = {}
        for host, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", self.output, re.MULTILINE):
            result[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counters)}
        return result

    def changed(self) -> int:
        return sum(c.get("changed", 0) for c in self.recap().values())


def run_playbook(playbook: str | Path, extra_vars: dict | None = None, *args: str) -> PlaybookRun:
    """Run a playbook against the scenario's hosts and return its rc and output."""
    # The whole inventory directory: the generated file plus what scenarios link in.
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    cmd = ["ansible-playbook", "-i", str(inventory), str(playbook)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    cmd += list(args)
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900, env=env)
    return PlaybookRun(proc.returncode, ANSI.sub("", proc.stdout + proc.stderr))


def pgbouncer_stats(db_host, database: str = "app") -> dict[str, int]:
    """pgbouncer's SHOW STATS counters for one database, read on the db host's admin console."""
    out = db_host.run(
        "runuser -u postgres -- psql -X -w -A -F '|' -P footer=off -h /var/run/postgresql -p 6432 "
        "-d pgbouncer -c 'SHOW STATS'"
    )
    assert out.rc == 0, out.stderr
    header, *rows = out.stdout.strip().splitlines()
    names = header.split("|")
    for row in rows:
        values = dict(zip(names, row.split("|"), strict=True))
        if values.get("database") == database:
            return {k: int(v) for k, v in values.items() if v.isdigit()}
    raise AssertionError(f"no pgbouncer stats for database {database}: {out.stdout}")


def converge_playbook() -> Path:
    """The scenario's own converge playbook."""
    return Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"


def http(
    host,
    url: str,
    method: str = "GET",
    body: dict | None = None,
    insecure: bool = False,
    options: tuple[str, ...] = (),
    read_body: bool = True,
) -> tuple[int, dict[str, str], str]:
    """Make a request from inside a test host (curl); return status, headers and body.

    insecure: accept the lab's self-signed certificate; options: more curl arguments;
    read_body: False for a body that is not text (a compressed asset): "" comes back.
    """
    args = ["-s", "-m", "20", "-X", method, *options]
    if insecure:
        args.append("-k")
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in args)
    out = host.run(f"curl {quoted} -D /tmp/.h -o /tmp/.b -w '%{{http_code}}' '{url}'")
    headers: dict[str, str] = {}
    for line in host.file("/tmp/.h").content_string.splitlines()[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    return int(out.stdout or 0), headers, host.file("/tmp/.b").content_string if read_body else ""


def write_items(host, base: str, count: int, prefix: str) -> None:
    """POST `count` items one request at a time to the reference app at `base`; each must be 201.

    Each request's INSERT runs on whichever worker accepts it, so enough of them pass every
    worker's connection over psycopg's prepare threshold.
    """
    for i in range(count):
        item = {"name": f"{prefix}-{uuid.uuid4().hex[:8]}-{i}", "category": prefix, "tags": [prefix]}
        status, _, body = http(host, base + "/api/items", "POST", {"items": [item]})
        assert status == 201, body


def run_task(host, base: str, insecure: bool = False, timeout: float = 60) -> dict:
    """Enqueue a task through a reference app at `base` (POST /api/tasks) and wait for its end.

    Returns the app's last answer about it: {"id", "state", "result"}.
    """
    status, _, body = http(host, base + "/api/tasks?limit=10", "POST", insecure=insecure)
    assert status == 202, body
    task_id = json.loads(body)["id"]
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = http(host, f"{base}/api/tasks/{task_id}", insecure=insecure)
        result = json.loads(body)
        if result["state"] in ("SUCCESS", "FAILURE") or time.monotonic() > deadline:
            return result
        time.sleep(1)


def env_file(host, path: str = "/etc/pystack/app.env") -> dict[str, str]:
    """The variables of an environment file the app role writes (KEY="value", shell quoting)."""
    pairs = (line.split("=", 1) for line in host.file(path).content_string.splitlines() if "=" in line)
    return {key: (shlex.split(value) or [""])[0] for key, value in pairs if not key.startswith("#")}


def deploy_probe(host, base: str) -> dict:
    """What the server's own workers say they run: the app role's probe, with the node's token."""
    token = env_file(host)["PYSTACK_PROBE_TOKEN"]
    return json.loads(host.check_output(f"curl -s -H 'X-Pystack-Probe: {token}' {base}/.pystack/deploy"))


def scenario_host(host, name: str):
    """Another host of the scenario's inventory, reached the way `host` is."""
    return host.get_host(f"ansible://{name}", ansible_inventory=host.backend.ansible_inventory)


@dataclass
class Sample:
    at: float  # seconds since the load started
    url: str
    status: int  # 0: no HTTP answer
    seconds: float
    error: str = ""  # the exception, or the body of an HTTP error
    retry_after: str = ""  # an HTTP error's Retry-After header


class Load:
    """A bounded client on the controller: `rate` requests a second in all, over `targets` in
    turn (a URL for a GET, or (method, URL, JSON body)), for at most `limit` seconds or until
    stop(). Each request is one new HTTP(S) connection (certificates are not checked) that
    waits up to 30 s, as a browser would (the balancers give a node 35 s); every answer is kept.

        with Load(["https://127.0.0.1:18441/", ("POST", "https://127.0.0.1:18442/notes", {...})]) as load:
            ...  # the fault, the deploy
        assert load.failed() == [], load.summary()
    """

    def __init__(self, targets: list, rate: float = 10, limit: float = 900):
        import threading

        self.targets = [(t if isinstance(t, tuple) else ("GET", t, None)) for t in targets]
        self.rate, self.limit = rate, limit
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(4)]

    def _run(self, lane: int) -> None:
        import ssl
        import urllib.error
        import urllib.request

        context = ssl._create_unverified_context()
        start, n = self.started, lane
        # Four lanes, each a quarter of the rate, offset so requests interleave.
        period = len(self._threads) / self.rate
        next_at = start + lane * period / len(self._threads)
        while not self._stop.is_set() and time.monotonic() - start < self.limit:
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            next_at += period
            method, url, body = self.targets[n % len(self.targets)]
            n += len(self._threads)
            t0 = time.monotonic()
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(url, data=data, method=method)
            if data is not None:
                request.add_header("Content-Type", "application/json")
            status, error, retry_after = 0, "", ""
            try:
                with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                    answer.read()
                    status = answer.status
            except urllib.error.HTTPError as exc:
                status, error = exc.code, exc.read()[:200].decode("utf-8", "replace")
                retry_after = exc.headers.get("Retry-After", "")
            except Exception as exc:
                error = repr(exc)[:200]
            self.samples.append(
                Sample(t0 - start, f"{method} {url}", status, time.monotonic() - t0, error, retry_after)
            )

    def now(self) -> float:
        """Seconds since the load started, on the clock of the samples' `at`."""
        return time.monotonic() - self.started

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def ok(self) -> list[Sample]:
        return [s for s in self.samples if 200 <= s.status < 400]

    def failed(self) -> list[Sample]:
        return [s for s in self.samples if not 200 <= s.status < 400]

    def summary(self) -> dict:
        """Counts per URL and status, and the slowest answers: for assertion messages."""
        counts: dict[str, int] = {}
        for s in self.samples:
            key = f"{s.url} {s.status} {s.error[:60]}".strip()
            counts[key] = counts.get(key, 0) + 1
        slowest = sorted(self.samples, key=lambda s: s.seconds)[-3:]
        return {"counts": counts, "slowest": [(round(s.at, 1), s.url, s.status, round(s.seconds, 2)) for s in slowest]}
