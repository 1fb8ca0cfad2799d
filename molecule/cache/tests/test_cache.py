"""What the clients of the cache tier see: ACL users, a cache that evicts,
a durable instance that keeps its data, changes applied without restarts."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from stackhelpers import converge_playbook, run_playbook

CACHE_HOST = "pystack-cache-cache1"
CLIENT_HOST = "pystack-cache-app1"
CACHE_PORT = 6379
DURABLE_PORT = 6380
# As in molecule.yml.
INSTANCES = [
    {"name": "cache", "port": CACHE_PORT, "role": "cache", "maxmemory": "16mb"},
    {"name": "durable", "port": DURABLE_PORT, "role": "durable", "maxmemory": "64mb"},
]

# Every test runs from the client host, over the scenario's network.
testinfra_hosts = [f"ansible://{CLIENT_HOST}"]


def secret(name: str) -> str:
    """A password the scenario generated (ansible.builtin.password lookup)."""
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets" / name
    return path.read_text().split(" salt=")[0].strip()


@pytest.fixture(scope="module")
def cache_host(host):
    return host.get_host(f"ansible://{CACHE_HOST}", ansible_inventory=host.backend.ansible_inventory)


def redis(host, port: int, *args: str, user: str | None = None, password: str | None = None) -> str:
    """Run one redis-cli command from the client host; its reply (or error) as text."""
    auth = ["--user", user] if user else []
    env = ["env", "REDISCLI_AUTH=" + password] if password else []
    argv = [*env, "redis-cli", "-h", CACHE_HOST, "-p", str(port), *auth, *args]
    out = host.run(" ".join(["%s"] * len(argv)), *argv)
    return (out.stdout + out.stderr).strip()


def app(host, port: int, *args: str) -> str:
    return redis(host, port, *args, user="app", password=secret("redis_app"))


def monitor(host, port: int, *args: str) -> str:
    return redis(host, port, *args, user="monitor", password=secret("redis_monitor"))


def info(host, port: int, section: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+):(.*?)\r?$", monitor(host, port, "INFO", section), re.MULTILINE))


def cache_playbook() -> Path:
    """The cache tier's own play (quicker than the scenario's converge, which also runs common)."""
    return converge_playbook().parents[2] / "playbooks" / "cache.yml"


def main_pid(cache_host, unit: str) -> int:
    return int(cache_host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip())


@pytest.mark.parametrize("name", ["cache", "durable"])
def test_each_instance_is_its_own_unit(cache_host, name):
    unit = cache_host.service(f"redis-server@{name}")
    assert unit.is_running
    assert unit.is_enabled
    assert cache_host.run("systemctl is-enabled redis-server.service").stdout.strip() == "masked"


def test_listens_on_private_address_and_loopback_only(cache_host):
    private = cache_host.ansible("setup", "filter=ansible_default_ipv4")["ansible_facts"]["ansible_default_ipv4"]
    listening = cache_host.run("ss -Htln").stdout
    for port in (CACHE_PORT, DURABLE_PORT):
        addresses = set(re.findall(rf"(\S+):{port}\s", listening))
        assert addresses == {"127.0.0.1", private["address"]}, listening


@pytest.mark.parametrize("port", [CACHE_PORT, DURABLE_PORT])
def test_no_credentials_no_access(host, port):
    assert "NOAUTH" in redis(host, port, "GET", "somekey")
    assert "WRONGPASS" in redis(host, port, "GET", "somekey", user="default", password="x" * 32)
    assert "WRONGPASS" in redis(host, port, "GET", "somekey", user="app", password="not-the-password-at-all")


@pytest.mark.parametrize("port", [CACHE_PORT, DURABLE_PORT])
def test_app_user_has_data_commands(host, port):
    assert app(host, port, "SET", "test:app", "hello") == "OK"
    assert app(host, port, "GET", "test:app") == "hello"
    assert app(host, port, "EXPIRE", "test:app", "60") == "1"
    assert 0 < int(app(host, port, "TTL", "test:app")) <= 60
    assert app(host, port, "DEL", "test:app") == "1"


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
def test_app_user_is_refused_administration(host, port, command):
    reply = app(host, port, *command)
    if command[0] == "DEBUG":
        # Redis refuses DEBUG to everyone (enable-debug-command no) before the
        # ACL is consulted; ask the ACL itself.
        assert "not allowed" in reply
        reply = redis(host, port, "ACL", "DRYRUN", "app", *command, user="admin", password=secret("redis_admin"))
        assert "no permissions" in reply
    else:
        assert "NOPERM" in reply


@pytest.mark.parametrize("port", [CACHE_PORT, DURABLE_PORT])
def test_monitoring_user_reads_info_only(host, port):
    assert "redis_version:" in monitor(host, port, "INFO", "server")
    assert monitor(host, port, "PING") == "PONG"
    for command in (["GET", "k"], ["SET", "k", "v"], ["CONFIG", "GET", "maxmemory"], ["KEYS", "*"]):
        assert "NOPERM" in monitor(host, port, *command)


def test_cache_evicts_and_never_fails_a_write(host):
    # 40 000 keys of 1 KiB (~45 MB) into a 16 MB cache, in one pipe.
    fill = (
        "python3 -c \"import sys; v = 'x' * 1024; "
        "sys.stdout.write(''.join(f'SET fill:{i} {v}\\r\\n' for i in range(40000)))\" "
        f"| REDISCLI_AUTH=%s redis-cli -h {CACHE_HOST} -p {CACHE_PORT} --user app --pipe"
    )
    out = host.run(fill, secret("redis_app"))
    assert out.rc == 0, out.stdout + out.stderr
    assert "errors: 0, replies: 40000" in out.stdout, out.stdout
    stats = info(host, CACHE_PORT, "stats")
    memory = info(host, CACHE_PORT, "memory")
    assert int(stats["evicted_keys"]) > 0
    assert memory["maxmemory_policy"] == "allkeys-lru"
    assert int(memory["maxmemory"]) == 16 * 1024 * 1024
    assert int(memory["used_memory"]) <= int(memory["maxmemory"]) * 1.1


def test_cache_does_not_persist(host):
    persistence = info(host, CACHE_PORT, "persistence")
    assert persistence["aof_enabled"] == "0"
    assert persistence["rdb_changes_since_last_save"] != "0" or persistence["rdb_last_bgsave_status"] == "ok"


def test_durable_instance_keeps_data_across_a_restart(host, cache_host):
    assert info(host, DURABLE_PORT, "persistence")["aof_enabled"] == "1"
    assert info(host, DURABLE_PORT, "memory")["maxmemory_policy"] == "noeviction"
    assert app(host, DURABLE_PORT, "SET", "session:test", "still-here") == "OK"
    assert app(host, DURABLE_PORT, "LPUSH", "celery", "task-1") == "1"
    before = main_pid(cache_host, "redis-server@durable")
    assert cache_host.run("systemctl restart redis-server@durable").rc == 0
    assert main_pid(cache_host, "redis-server@durable") != before
    assert app(host, DURABLE_PORT, "GET", "session:test") == "still-here"
    assert app(host, DURABLE_PORT, "RPOP", "celery") == "task-1"


def test_acl_files_hold_no_plaintext_password(cache_host):
    for name in ("cache", "durable"):
        acl = cache_host.file(f"/etc/redis/users-{name}.acl")
        assert acl.mode == 0o640
        assert acl.user == "root"
        assert acl.group == "redis"
        content = acl.content_string
        assert "user default reset off" in content
        for password in ("redis_admin", "redis_app", "redis_monitor"):
            assert secret(password) not in content


def test_runtime_setting_changes_without_a_restart(host, cache_host):
    before = main_pid(cache_host, "redis-server@cache")
    bigger = [dict(INSTANCES[0], maxmemory="24mb"), INSTANCES[1]]
    try:
        run = run_playbook(cache_playbook(), {"redis_instances": bigger})
        assert run.rc == 0, run.output
        assert "CONFIG SET" in run.output
        assert int(info(host, CACHE_PORT, "memory")["maxmemory"]) == 24 * 1024 * 1024
        assert main_pid(cache_host, "redis-server@cache") == before
    finally:
        run = run_playbook(cache_playbook())
    assert run.rc == 0, run.output
    assert int(info(host, CACHE_PORT, "memory")["maxmemory"]) == 16 * 1024 * 1024
    assert main_pid(cache_host, "redis-server@cache") == before


def test_start_time_setting_restarts_the_instance(host, cache_host):
    before = main_pid(cache_host, "redis-server@cache")
    try:
        run = run_playbook(cache_playbook(), {"redis_tcp_backlog": 256})
        assert run.rc == 0, run.output
        assert main_pid(cache_host, "redis-server@cache") != before
        assert app(host, CACHE_PORT, "PING") == "PONG"
    finally:
        run = run_playbook(cache_playbook())
    assert run.rc == 0, run.output


def test_failed_restart_leaves_the_previous_config_running(host, cache_host):
    # Something else holds the port the new configuration asks for: the
    # checker passes (it binds no port), the restart fails, the role puts the
    # previous files back and runs the instance with them.
    blocker = cache_host.run("systemd-run --unit pystack-cache-blocker python3 -m http.server 6391")
    assert blocker.rc == 0, blocker.stderr
    try:
        moved = [dict(INSTANCES[0], port=6391), INSTANCES[1]]
        run = run_playbook(cache_playbook(), {"redis_instances": moved})
        assert run.rc != 0
        assert "the previous files are back in place" in " ".join(run.output.split()), run.output
        assert "port 6379" in cache_host.file("/etc/redis/redis-cache.conf").content_string
        assert not cache_host.run("ls /etc/redis/*~").stdout
        assert app(host, CACHE_PORT, "PING") == "PONG"
    finally:
        cache_host.run("systemctl stop pystack-cache-blocker")
    run = run_playbook(cache_playbook())
    assert run.rc == 0, run.output
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
    ],
)
def test_bad_input_is_refused_before_any_change(extra_vars, variable, allowed):
    if "redis_cache_maxmemory" in extra_vars:
        # Only used by instances that set no maxmemory of their own.
        extra_vars = dict(extra_vars, redis_instances=[{k: v for k, v in INSTANCES[0].items() if k != "maxmemory"}])
    run = run_playbook(converge_playbook(), extra_vars)
    assert run.rc != 0
    assert variable in run.output
    assert " ".join(allowed.split()) in " ".join(run.output.split())
    assert run.recap(), run.output
    assert run.changed() == 0, run.output
