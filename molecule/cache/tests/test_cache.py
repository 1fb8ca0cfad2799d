"""What the clients of the cache tier see: ACL users, a cache that evicts,
a durable instance that keeps its data, changes applied without restarts.

Every behaviour is asserted once per engine (redis_engine): one cache host
runs Redis, the other Valkey, and the app host is the client of both."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stackhelpers import converge_playbook, run_playbook

CLIENT_HOST = "pystack-cache-app1"
CACHE_PORT = 6379
DURABLE_PORT = 6380
# As in molecule.yml.
INSTANCES = [
    {"name": "cache", "port": CACHE_PORT, "role": "cache", "maxmemory": "16mb"},
    {"name": "durable", "port": DURABLE_PORT, "role": "durable", "maxmemory": "64mb"},
]


@dataclass(frozen=True)
class Engine:
    """What differs between the engines on Debian (as in roles/redis/vars/main.yml)."""

    name: str
    package: str
    unit: str  # templated: <unit>@<instance>.service
    conf_dir: str
    owner: str


ENGINES = {
    "redis": Engine("redis", "redis-server", "redis-server", "/etc/redis", "redis"),
    "valkey": Engine("valkey", "valkey-server", "valkey-server", "/etc/valkey", "valkey"),
}
# The cache hosts of molecule.yml and the redis_engine each one runs.
CACHE_HOSTS = {"pystack-cache-redis": "redis", "pystack-cache-valkey": "valkey"}

# Every test runs from the client host, over the scenario's network.
testinfra_hosts = [f"ansible://{CLIENT_HOST}"]


@dataclass(frozen=True)
class Cache:
    """One cache host: its name (also its address on the network), engine and testinfra host."""

    name: str
    engine: Engine
    host: Any

    def unit(self, instance: str) -> str:
        return f"{self.engine.unit}@{instance}.service"

    def conf(self, instance: str) -> str:
        return f"{self.engine.conf_dir}/{self.engine.name}-{instance}.conf"


@pytest.fixture(scope="module", params=list(CACHE_HOSTS), ids=list(CACHE_HOSTS.values()))
def cache(request, host) -> Cache:
    name = request.param
    remote = host.get_host(f"ansible://{name}", ansible_inventory=host.backend.ansible_inventory)
    return Cache(name, ENGINES[CACHE_HOSTS[name]], remote)


def secret(name: str) -> str:
    """A password the scenario generated (ansible.builtin.password lookup)."""
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets" / name
    return path.read_text().split(" salt=")[0].strip()


def redis(host, cache: Cache, port: int, *args: str, user: str | None = None, password: str | None = None) -> str:
    """Run one redis-cli command from the client host; its reply (or error) as text."""
    auth = ["--user", user] if user else []
    env = ["env", "REDISCLI_AUTH=" + password] if password else []
    argv = [*env, "redis-cli", "-h", cache.name, "-p", str(port), *auth, *args]
    out = host.run(" ".join(["%s"] * len(argv)), *argv)
    return (out.stdout + out.stderr).strip()


def app(host, cache: Cache, port: int, *args: str) -> str:
    return redis(host, cache, port, *args, user="app", password=secret("redis_app"))


def monitor(host, cache: Cache, port: int, *args: str) -> str:
    return redis(host, cache, port, *args, user="monitor", password=secret("redis_monitor"))


def info(host, cache: Cache, port: int, section: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+):(.*?)\r?$", monitor(host, cache, port, "INFO", section), re.MULTILINE))


def cache_playbook() -> Path:
    """The cache tier's own play (quicker than the scenario's converge, which also runs common)."""
    return converge_playbook().parents[2] / "playbooks" / "cache.yml"


def run_cache_play(cache: Cache, extra_vars: dict | None = None):
    """The cache play on this cache host only."""
    return run_playbook(cache_playbook(), extra_vars, "--limit", cache.name)


def main_pid(cache: Cache, instance: str) -> int:
    return int(cache.host.run(f"systemctl show -p MainPID --value {cache.unit(instance)}").stdout.strip())


def test_each_host_runs_the_engine_asked_for(host, cache):
    other = next(e for e in ENGINES.values() if e != cache.engine)
    for port in (CACHE_PORT, DURABLE_PORT):
        server = info(host, cache, port, "server")
        if cache.engine.name == "valkey":
            assert server.get("server_name") == "valkey", server
            assert server["valkey_version"].startswith("8."), server
        else:
            assert "valkey_version" not in server, server
            assert server["redis_version"].startswith("8."), server
    assert cache.host.package(cache.engine.package).is_installed
    assert not cache.host.package(other.package).is_installed
    exec_start = cache.host.run(f"systemctl show -p ExecStart --value {cache.unit('cache')}").stdout
    assert f"/usr/bin/{cache.engine.package} {cache.conf('cache')}" in exec_start, exec_start


@pytest.mark.parametrize("name", ["cache", "durable"])
def test_each_instance_is_its_own_unit(cache, name):
    unit = cache.host.service(cache.unit(name))
    assert unit.is_running
    assert unit.is_enabled
    default_unit = f"{cache.engine.unit}.service"
    assert cache.host.run(f"systemctl is-enabled {default_unit}").stdout.strip() == "masked"


def test_listens_on_private_address_and_loopback_only(cache):
    facts = cache.host.ansible("setup", "filter=ansible_default_ipv4")["ansible_facts"]
    listening = cache.host.run("ss -Htln").stdout
    for port in (CACHE_PORT, DURABLE_PORT):
        addresses = set(re.findall(rf"(\S+):{port}\s", listening))
        assert addresses == {"127.0.0.1", facts["ansible_default_ipv4"]["address"]}, listening


@pytest.mark.parametrize("port", [CACHE_PORT, DURABLE_PORT])
def test_no_credentials_no_access(host, cache, port):
    assert "NOAUTH" in redis(host, cache, port, "GET", "somekey")
    assert "WRONGPASS" in redis(host, cache, port, "GET", "somekey", user="default", password="x" * 32)
    assert "WRONGPASS" in redis(host, cache, port, "GET", "somekey", user="app", password="not-the-password-at-all")


@pytest.mark.parametrize("port", [CACHE_PORT, DURABLE_PORT])
def test_app_user_has_data_commands(host, cache, port):
    assert app(host, cache, port, "SET", "test:app", "hello") == "OK"
    assert app(host, cache, port, "GET", "test:app") == "hello"
    assert app(host, cache, port, "EXPIRE", "test:app", "60") == "1"
    assert 0 < int(app(host, cache, port, "TTL", "test:app")) <= 60
    assert app(host, cache, port, "DEL", "test:app") == "1"


@pytest.mark.parametrize("port", [CACHE_PORT, DURABLE_PORT])
@pytest.mark.parametrize(
    "command",
    [
        ["CONFIG", "GET", "maxmemory"],
        ["CONFIG", "SET", "maxmemory", "0"],
        ["FLUSHALL"],
        ["FLUSHDB"],
        ["KEYS", "*"],
        ["DEBUG", "SLEEP", "0"],
        ["SHUTDOWN", "NOSAVE"],
        ["ACL", "LIST"],
        ["MONITOR"],
    ],
)
def test_app_user_is_refused_administration(host, cache, port, command):
    reply = app(host, cache, port, *command)
    if command[0] == "DEBUG":
        # Redis and Valkey refuse DEBUG to everyone (enable-debug-command no)
        # before the ACL is consulted; ask the ACL itself.
        assert "not allowed" in reply
        admin = secret("redis_admin")
        reply = redis(host, cache, port, "ACL", "DRYRUN", "app", *command, user="admin", password=admin)
        assert "no permissions" in reply
    else:
        assert "NOPERM" in reply


@pytest.mark.parametrize("port", [CACHE_PORT, DURABLE_PORT])
def test_monitoring_user_reads_info_and_queue_lengths_only(host, cache, port):
    # Valkey reports redis_version too (7.2.4, the Redis it is compatible with).
    assert "redis_version:" in monitor(host, cache, port, "INFO", "server")
    assert monitor(host, cache, port, "PING") == "PONG"
    # The exporter's queue lengths: the type and length of the task queues' keys.
    assert monitor(host, cache, port, "TYPE", "celery") in ("none", "list")
    assert monitor(host, cache, port, "LLEN", "rq:queue:default").isdigit()
    for command in (
        ["GET", "k"],
        ["SET", "k", "v"],
        ["CONFIG", "GET", "maxmemory"],
        ["KEYS", "*"],
        ["LLEN", "session:x"],
        ["LPOP", "celery"],
        ["DEL", "rq:queue:default"],
    ):
        assert "NOPERM" in monitor(host, cache, port, *command)


def test_cache_evicts_and_never_fails_a_write(host, cache):
    # 40 000 keys of 1 KiB (~45 MB) into a 16 MB cache, in one pipe.
    fill = (
        "python3 -c \"import sys; v = 'x' * 1024; "
        "sys.stdout.write(''.join(f'SET fill:{i} {v}\\r\\n' for i in range(40000)))\" "
        f"| REDISCLI_AUTH=%s redis-cli -h {cache.name} -p {CACHE_PORT} --user app --pipe"
    )
    out = host.run(fill, secret("redis_app"))
    assert out.rc == 0, out.stdout + out.stderr
    assert "errors: 0, replies: 40000" in out.stdout, out.stdout
    stats = info(host, cache, CACHE_PORT, "stats")
    memory = info(host, cache, CACHE_PORT, "memory")
    assert int(stats["evicted_keys"]) > 0
    assert memory["maxmemory_policy"] == "allkeys-lru"
    assert int(memory["maxmemory"]) == 16 * 1024 * 1024
    assert int(memory["used_memory"]) <= int(memory["maxmemory"]) * 1.1


def test_cache_does_not_persist(host, cache):
    persistence = info(host, cache, CACHE_PORT, "persistence")
    assert persistence["aof_enabled"] == "0"
    assert persistence["rdb_changes_since_last_save"] != "0" or persistence["rdb_last_bgsave_status"] == "ok"


def test_durable_instance_keeps_data_across_a_restart(host, cache):
    assert info(host, cache, DURABLE_PORT, "persistence")["aof_enabled"] == "1"
    assert info(host, cache, DURABLE_PORT, "memory")["maxmemory_policy"] == "noeviction"
    assert app(host, cache, DURABLE_PORT, "SET", "session:test", "still-here") == "OK"
    assert app(host, cache, DURABLE_PORT, "LPUSH", "celery", "task-1") == "1"
    before = main_pid(cache, "durable")
    assert cache.host.run(f"systemctl restart {cache.unit('durable')}").rc == 0
    assert main_pid(cache, "durable") != before
    assert app(host, cache, DURABLE_PORT, "GET", "session:test") == "still-here"
    assert app(host, cache, DURABLE_PORT, "RPOP", "celery") == "task-1"


def test_acl_files_hold_no_plaintext_password(cache):
    for name in ("cache", "durable"):
        acl = cache.host.file(f"{cache.engine.conf_dir}/users-{name}.acl")
        assert acl.mode == 0o640
        assert acl.user == "root"
        assert acl.group == cache.engine.owner
        content = acl.content_string
        assert "user default reset off" in content
        for password in ("redis_admin", "redis_app", "redis_monitor"):
            assert secret(password) not in content


def test_runtime_setting_changes_without_a_restart(host, cache):
    before = main_pid(cache, "cache")
    bigger = [dict(INSTANCES[0], maxmemory="24mb"), INSTANCES[1]]
    try:
        run = run_cache_play(cache, {"redis_instances": bigger})
        assert run.rc == 0, run.output
        assert "CONFIG SET" in run.output
        assert int(info(host, cache, CACHE_PORT, "memory")["maxmemory"]) == 24 * 1024 * 1024
        assert main_pid(cache, "cache") == before
    finally:
        run = run_cache_play(cache)
    assert run.rc == 0, run.output
    assert int(info(host, cache, CACHE_PORT, "memory")["maxmemory"]) == 16 * 1024 * 1024
    assert main_pid(cache, "cache") == before


def test_start_time_setting_restarts_the_instance(host, cache):
    before = main_pid(cache, "cache")
    try:
        run = run_cache_play(cache, {"redis_tcp_backlog": 256})
        assert run.rc == 0, run.output
        assert main_pid(cache, "cache") != before
        assert app(host, cache, CACHE_PORT, "PING") == "PONG"
    finally:
        run = run_cache_play(cache)
    assert run.rc == 0, run.output


def test_failed_restart_leaves_the_previous_config_running(host, cache):
    # Something else holds the port the new configuration asks for: the
    # checker passes (it binds no port), the restart fails, the role puts the
    # previous files back and runs the instance with them.
    blocker = cache.host.run("systemd-run --unit pystack-cache-blocker python3 -m http.server 6391")
    assert blocker.rc == 0, blocker.stderr
    try:
        moved = [dict(INSTANCES[0], port=6391), INSTANCES[1]]
        run = run_cache_play(cache, {"redis_instances": moved})
        assert run.rc != 0
        assert "the previous files are back in place" in " ".join(run.output.split()), run.output
        assert "port 6379" in cache.host.file(cache.conf("cache")).content_string
        assert not cache.host.run(f"ls {cache.engine.conf_dir}/*~").stdout
        assert app(host, cache, CACHE_PORT, "PING") == "PONG"
    finally:
        cache.host.run("systemctl stop pystack-cache-blocker")
    run = run_cache_play(cache)
    assert run.rc == 0, run.output
    assert run.changed() == 0, run.output


def test_switching_engine_in_place_is_refused(host, cache):
    other = next(name for name in ENGINES if name != cache.engine.name)
    run = run_cache_play(cache, {"redis_engine": other})
    output = " ".join(run.output.split())
    assert run.rc != 0
    assert f"redis_engine is '{other}'" in output, run.output
    assert f"{cache.unit('cache')}, {cache.unit('durable')}" in output, run.output
    assert "does not switch engines in place" in output, run.output
    assert run.changed() == 0, run.output
    assert app(host, cache, CACHE_PORT, "PING") == "PONG"


def test_valkey_is_refused_where_debian_lacks_it():
    # Debian 12 has no valkey-server in main. The host's facts say Debian 12
    # (valkey-on-bookworm.yml); nothing may change before the refusal.
    run = run_playbook(converge_playbook().parent / "valkey-on-bookworm.yml")
    output = " ".join(run.output.split())
    assert run.rc != 0
    assert "redis_engine is 'valkey'" in output, run.output
    assert "runs Debian 12.12 (bookworm)" in output, run.output
    assert "Valkey needs Debian 13 or later (allowed on this host: redis)" in output, run.output
    assert run.recap(), run.output
    assert run.changed() == 0, run.output


@pytest.mark.parametrize(
    ("extra_vars", "variable", "allowed"),
    [
        (
            {"redis_instances": [dict(INSTANCES[0], maxmemory_policy="allkeys-sometimes"), INSTANCES[1]]},
            "maxmemory_policy",
            "allkeys-lru",
        ),
        (
            {"redis_instances": [dict(INSTANCES[0], maxmemory="lots"), INSTANCES[1]]},
            "redis_instances[0].maxmemory",
            "256mb",
        ),
        ({"redis_cache_maxmemory": "150%"}, "redis_cache_maxmemory", "1% to 90%"),
        (
            {"redis_instances": [dict(INSTANCES[0], maxmemory_policy="noeviction"), INSTANCES[1]]},
            "redis_instances[0].maxmemory_policy",
            "a cache\n      must evict",
        ),
        ({"redis_app_password": "short"}, "redis_app_password", "16 characters"),
        ({"redis_engine": "memcached"}, "redis_engine", "redis, valkey"),
    ],
)
def test_bad_input_is_refused_before_any_change(extra_vars, variable, allowed):
    if "redis_cache_maxmemory" in extra_vars:
        # Only used by instances that set no maxmemory of their own.
        extra_vars = dict(extra_vars, redis_instances=[{k: v for k, v in INSTANCES[0].items() if k != "maxmemory"}])
    # The cache tier's play on every cache host: it refuses in its first tasks.
    run = run_playbook(cache_playbook(), extra_vars)
    assert run.rc != 0
    assert variable in run.output
    assert " ".join(allowed.split()) in " ".join(run.output.split())
    assert run.recap(), run.output
    assert run.changed() == 0, run.output
