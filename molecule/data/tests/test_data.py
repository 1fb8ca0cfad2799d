"""What the app tier sees of the data tier: PostgreSQL behind pgbouncer."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import testinfra
from stackhelpers import converge_playbook, run_playbook

testinfra_hosts = ["pystack-data-db1"]

DB = "pystack-data-db1"
CLIENT = "pystack-data-app1"
OUTSIDER = "pystack-data-outsider"
SECRETS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "secrets"


def other_host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={os.environ['MOLECULE_INVENTORY_FILE']}")


@pytest.fixture(scope="module")
def client():
    return other_host(CLIENT)


@pytest.fixture(scope="module")
def outsider():
    return other_host(OUTSIDER)


@pytest.fixture(scope="module")
def app_password() -> str:
    return (SECRETS / "postgresql_app").read_text().strip()


def psql(host, sql: str, *, port: int = 6432, password: str, user: str = "app", server: str = DB):
    """Run SQL as a network client, the way the app connects."""
    cmd = (
        f"PGPASSWORD={shlex.quote(password)} PGCONNECT_TIMEOUT=10 psql -X -w -At -v ON_ERROR_STOP=1 "
        f"-h {server} -p {port} -U {user} -d app -c {shlex.quote(sql)}"
    )
    return host.run(cmd)


def superuser_sql(host, sql: str) -> str:
    """Run SQL as the postgres superuser on the db host (local socket, peer)."""
    out = host.run(f"runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -c {shlex.quote(sql)}")
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def pgbouncer_config(host) -> dict[str, str]:
    out = host.run(
        "runuser -u postgres -- psql -X -w -At -F '|' -h /var/run/postgresql -p 6432 -d pgbouncer -c 'SHOW CONFIG'"
    )
    assert out.rc == 0, out.stderr
    return {row.split("|")[0]: row.split("|")[1] for row in out.stdout.splitlines()}


# PostgreSQL and pgbouncer from the distribution: major version per release,
# and whether pgbouncer keeps prepared statements across transactions (1.21+).
DISTRO_POSTGRESQL = {"bookworm": 15, "trixie": 17}


def pg_major(host) -> int:
    return int(superuser_sql(host, "SHOW server_version_num")) // 10000


def pgbouncer_version(host) -> tuple[int, ...]:
    out = host.run("pgbouncer --version")
    assert out.rc == 0, out.stderr
    found = re.search(r"PgBouncer (\d+)\.(\d+)", out.stdout)
    assert found, out.stdout
    return tuple(int(part) for part in found.groups())


def test_services_run(host):
    major = pg_major(host)
    assert major == DISTRO_POSTGRESQL.get(host.system_info.codename, major)
    assert host.service(f"postgresql@{major}-main").is_running
    assert host.service("pgbouncer").is_running
    assert host.service("pgbouncer").is_enabled


def test_client_reads_and_writes_through_pgbouncer(host, client, app_password):
    marker = uuid.uuid4().hex
    out = psql(
        client,
        "CREATE TABLE IF NOT EXISTS probe (id serial PRIMARY KEY, marker text NOT NULL); "
        f"INSERT INTO probe (marker) VALUES ('{marker}'); "
        f"SELECT count(*) FROM probe WHERE marker = '{marker}';",
        password=app_password,
    )
    assert out.rc == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_wrong_password_is_refused(host, client):
    out = psql(client, "SELECT 1", password="not-the-password")
    assert out.rc != 0
    assert "authentication failed" in out.stderr


def test_host_outside_the_client_groups_is_refused(host, outsider, app_password):
    direct = psql(outsider, "SELECT 1", port=5432, password=app_password)
    assert direct.rc != 0
    assert "no pg_hba.conf entry" in direct.stderr
    pooled = psql(outsider, "SELECT 1", port=6432, password=app_password)
    assert pooled.rc != 0
    # pgbouncer's hba has no line for it: "login rejected" before 1.24, then
    # "no authentication method is found".
    assert "login rejected" in pooled.stderr or "no authentication method is found" in pooled.stderr


def test_superuser_is_not_reachable_over_the_network(host, client):
    out = psql(client, "SELECT 1", port=5432, user="postgres", password="guess")
    assert out.rc != 0
    assert "no pg_hba.conf entry" in out.stderr


def test_nothing_trusts_and_only_scram_over_tcp(host):
    methods = superuser_sql(host, "SELECT DISTINCT type || ':' || auth_method FROM pg_hba_file_rules ORDER BY 1")
    assert set(methods.splitlines()) == {"local:peer", "local:scram-sha-256", "host:scram-sha-256"}
    assert superuser_sql(host, "SHOW password_encryption") == "scram-sha-256"
    bouncer_hba = host.file("/etc/pgbouncer/pg_hba.conf").content_string
    assert not re.search(r"^\s*[^#].*\btrust\b", bouncer_hba, re.MULTILINE)


def test_listens_only_where_clients_are(host):
    listen = superuser_sql(host, "SHOW listen_addresses").split(",")
    assert listen[0] == "localhost"
    assert len(listen) == 2
    assert "*" not in pgbouncer_config(host)["listen_addr"]


def test_pgbouncer_runs_the_configuration_asked_for(host):
    config = pgbouncer_config(host)
    assert config["pool_mode"] == "transaction"
    assert config["auth_type"] == "hba"
    assert config["auth_user"] == "pgbouncer_auth"
    assert config["tcp_keepalive"] == "1"
    assert int(config["max_client_conn"]) >= 1000
    ini = host.file("/etc/pgbouncer/pgbouncer.ini")
    assert (ini.user, ini.group, ini.mode) == ("postgres", "postgres", 0o640)
    if pgbouncer_version(host) >= (1, 21):
        assert config["max_prepared_statements"] == "200"
    else:
        assert "max_prepared_statements" not in ini.content_string
    assert host.file("/etc/pgbouncer/userlist.txt").mode == 0o640


def test_pg_stat_statements_and_slow_queries(host, client, app_password):
    assert "pg_stat_statements" in superuser_sql(host, "SHOW shared_preload_libraries")
    assert superuser_sql(host, "SHOW log_min_duration_statement") == "250ms"
    out = psql(client, "SELECT pg_sleep(0.3) AS slow_probe", password=app_password)
    assert out.rc == 0, out.stderr
    calls = superuser_sql(host, "SELECT sum(calls) FROM pg_stat_statements WHERE query LIKE '%slow_probe%'")
    assert int(calls or 0) >= 1
    log = host.file(f"/var/log/postgresql/postgresql-{pg_major(host)}-main.log").content_string
    assert re.search(r"duration: \d+\.\d+ ms\s+statement: SELECT pg_sleep\(0\.3\) AS slow_probe", log)


def test_memory_is_sized_from_the_override(host):
    # The scenario sets postgresql_memory_mb: 1024, as the lab does.
    conf = host.file(f"/etc/postgresql/{pg_major(host)}/main/conf.d/60-pystack.conf").content_string
    assert "Memory sized for 1024 MB (from postgresql_memory_mb)" in conf
    assert superuser_sql(host, "SHOW shared_buffers") == "256MB"
    assert superuser_sql(host, "SHOW effective_cache_size") == "768MB"


def test_memory_is_sized_from_the_service_cgroup_limit(host):
    """Without the override the role takes the tightest cgroup limit over the
    service, not the machine's RAM that the container sees (a dry run)."""
    unit = f"postgresql@{pg_major(host)}-main.service"
    limit = host.run(f"systemctl set-property --runtime {unit} MemoryMax=768M MemoryLimit=768M")
    assert limit.rc == 0, limit.stderr
    try:
        run = run_playbook(
            converge_playbook(), {"postgresql_memory_mb": ""}, "--check", "--diff", "--tags", "postgresql"
        )
    finally:
        host.run(f"systemctl set-property --runtime {unit} MemoryMax=infinity MemoryLimit=infinity")
        host.run(f"systemctl revert {unit}")
    assert run.rc == 0, run.output
    sized = r"^\+# Memory sized for 768 MB \(from /sys/fs/cgroup/\S+/memory\.(max|limit_in_bytes)\)"
    assert re.search(sized, run.output, re.MULTILINE), run.output
    assert "+shared_buffers = '192MB'" in run.output
    assert superuser_sql(host, "SHOW shared_buffers") == "256MB", "a dry run changed the server"


PREPARED = r"""
import json, sys, threading
import psycopg
from psycopg import pq

host, password, clients, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
results, errors, lock = {}, [], threading.Lock()
together = threading.Barrier(clients)

# The client's prepared statement, as a function of the key. Even clients let
# psycopg prepare it (named _pg3_0 in every client, as apps do): a statement
# served to the wrong client would show. Odd clients prepare one with a name
# of their own through libpq: one missing on the server connection of a later
# transaction would show.
def prepared(conn, n):
    query = f"SELECT id, label, {n} AS client, pg_backend_pid() FROM prepared_probe WHERE id = %s"
    if n % 2 == 0:
        return lambda key: conn.execute(query, (key,), prepare=True).fetchone()
    name = f"client_{n}".encode()
    with conn.transaction():
        res = conn.pgconn.prepare(name, query.replace("%s", "$1").encode())
    if res.status != pq.ExecStatus.COMMAND_OK:
        raise RuntimeError(res.error_message.decode().strip())

    def run(key):
        res = conn.pgconn.exec_prepared(name, [str(key).encode()])
        if res.status != pq.ExecStatus.TUPLES_OK:
            raise RuntimeError(res.error_message.decode().strip())
        row = [res.get_value(0, col).decode() for col in range(4)]
        return int(row[0]), row[1], int(row[2]), int(row[3])
    return run

def client(n):
    try:
        # Its own connection through pgbouncer; every statement its own transaction.
        conn = psycopg.connect(host=host, port=6432, dbname="app_small_pool", user="app",
                               password=password, connect_timeout=30, autocommit=True)
    except Exception:
        together.abort()
        raise
    try:
        with conn:
            execute = prepared(conn, n)
            backends, wrong = set(), []
            together.wait(timeout=60)
            for i in range(rounds):
                key = (n * 7919 + i * 31) % 1000 + 1
                with conn.transaction():
                    row = execute(key)
                if tuple(row[:3]) != (key, f"row {key}", n):
                    wrong.append([key, list(row[:3])])
                backends.add(row[3])
            with conn.transaction():
                execute(1)
                on_server = conn.execute(
                    "SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql AND statement LIKE %s",
                    (f"%{n} AS client%",), prepare=False).fetchone()[0]
        with lock:
            results[n] = {"backends": sorted(backends), "wrong": wrong[:3], "on_server": on_server}
    except Exception as e:
        together.abort()  # the others stop waiting for this one
        with lock:
            errors.append(f"client {n}: {type(e).__name__}: {str(e).strip()}")

threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"results": results, "errors": errors}))
"""


def test_prepared_statements_survive_transaction_pooling(host, client, app_password):
    """psycopg 3 clients prepare a statement once and reuse it in many
    transactions, served by whichever server connection is free."""
    if pgbouncer_version(host) < (1, 21):
        pytest.skip("pgbouncer before 1.21 keeps no prepared statements across transactions")
    clients, rounds = 8, 150
    pool = int(pgbouncer_config(host)["reserve_pool_size"]) + 2  # app_small_pool: pool_size 2
    assert pool < clients
    table = psql(
        client,
        "CREATE TABLE IF NOT EXISTS prepared_probe (id int PRIMARY KEY, label text NOT NULL); "
        "INSERT INTO prepared_probe SELECT g, 'row ' || g FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING",
        password=app_password,
    )
    assert table.rc == 0, table.stderr
    script = base64.b64encode(PREPARED.encode()).decode()
    assert client.run(f"echo {script} | base64 -d > /tmp/pystack-prepared.py").rc == 0
    out = client.run(f"python3 /tmp/pystack-prepared.py {DB} {shlex.quote(app_password)} {clients} {rounds}")
    assert out.rc == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == [], result["errors"]
    results = result["results"]
    assert len(results) == clients, result
    assert all(r["wrong"] == [] for r in results.values()), results
    # Each client's statement ran on several server connections, all from one small pool,
    # and pgbouncer (not the client's own name) holds it there.
    assert all(len(r["backends"]) >= 2 for r in results.values()), results
    assert len({pid for r in results.values() for pid in r["backends"]}) <= pool, results
    assert all(r["on_server"] >= 1 for r in results.values()), results


LOAD = r"""
import json, sys, threading, time
import psycopg2

host, password, clients = sys.argv[1], sys.argv[2], int(sys.argv[3])
conns, errors, lock = [], [], threading.Lock()

def connect():
    try:
        c = psycopg2.connect(host=host, port=6432, dbname="app", user="app",
                             password=password, connect_timeout=60)
        with lock:
            conns.append(c)
    except Exception as e:
        with lock:
            errors.append(str(e).strip())

def work(c):
    try:
        for _ in range(3):
            with c.cursor() as cur:
                cur.execute("SELECT pg_sleep(0.05)")
            c.commit()
    except Exception as e:
        with lock:
            errors.append(str(e).strip())

start = time.monotonic()
threads = [threading.Thread(target=connect) for _ in range(clients)]
[t.start() for t in threads]
[t.join() for t in threads]
connected = len(conns)
threads = [threading.Thread(target=work, args=(c,)) for c in conns]
[t.start() for t in threads]
[t.join() for t in threads]
time.sleep(1)
[c.close() for c in conns]
print(json.dumps({"connected": connected, "errors": len(errors), "first_errors": errors[:3],
                  "seconds": round(time.monotonic() - start, 1)}))
"""

SAMPLER = (
    "for i in $(seq 100); do runuser -u postgres -- psql -X -At -c "
    "\"SELECT count(*) FILTER (WHERE usename = 'app'), count(*) FROM pg_stat_activity "
    "WHERE datname = 'app' AND backend_type = 'client backend'\"; sleep 0.1; done"
)


def test_500_clients_share_a_small_pool(host, client, app_password):
    config = pgbouncer_config(host)
    pool_limit = int(config["default_pool_size"]) + int(config["reserve_pool_size"])
    db_limit = int(config["max_db_connections"])
    script = base64.b64encode(LOAD.encode()).decode()
    assert client.run(f"echo {script} | base64 -d > /tmp/pystack-load.py").rc == 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        load = pool.submit(client.run, f"python3 /tmp/pystack-load.py {DB} {shlex.quote(app_password)} 500")
        samples = pool.submit(host.run, SAMPLER)
        load_out, sample_out = load.result(), samples.result()
    assert load_out.rc == 0, load_out.stderr
    result = json.loads(load_out.stdout.strip().splitlines()[-1])
    assert result["connected"] == 500, result
    assert result["errors"] == 0, result
    counts = [tuple(map(int, line.split("|"))) for line in sample_out.stdout.split() if "|" in line]
    busiest_user = max(c[0] for c in counts)
    busiest_db = max(c[1] for c in counts)
    assert busiest_user > 0, "the sampler never saw the pool at work"
    assert busiest_user <= pool_limit, (busiest_user, pool_limit)
    assert busiest_db <= db_limit, (busiest_db, db_limit)


def postmaster_started(host) -> str:
    return superuser_sql(host, "SELECT pg_postmaster_start_time()")


def test_data_survives_setting_changes(host, client, app_password):
    marker = uuid.uuid4().hex
    write = psql(
        client,
        "CREATE TABLE IF NOT EXISTS probe (id serial PRIMARY KEY, marker text NOT NULL); "
        f"INSERT INTO probe (marker) VALUES ('{marker}')",
        password=app_password,
    )
    assert write.rc == 0, write.stderr
    started = postmaster_started(host)

    # work_mem takes a reload: applied, no restart.
    run = run_playbook(converge_playbook(), {"postgresql_work_mem": "7MB"})
    assert run.rc == 0, run.output
    assert superuser_sql(host, "SHOW work_mem") == "7MB"
    assert postmaster_started(host) == started

    # max_connections needs a restart; forbidden, the role says so and waits.
    run = run_playbook(converge_playbook(), {"postgresql_max_connections": 81, "postgresql_restart_allowed": False})
    assert run.rc == 0, run.output
    assert "needs a restart for max_connections" in run.output
    assert postmaster_started(host) == started
    assert superuser_sql(host, "SELECT pending_restart FROM pg_settings WHERE name = 'max_connections'") == "t"

    # Allowed (the default), it restarts once.
    run = run_playbook(converge_playbook(), {"postgresql_max_connections": 81})
    assert run.rc == 0, run.output
    assert postmaster_started(host) != started
    assert superuser_sql(host, "SHOW max_connections") == "81"

    # Back to the converged state; the row is still there.
    assert run_playbook(converge_playbook()).rc == 0
    out = psql(client, f"SELECT count(*) FROM probe WHERE marker = '{marker}'", password=app_password)
    assert out.stdout.strip() == "1", out.stderr


@pytest.mark.parametrize(
    ("extra_vars", "variable", "allowed"),
    [
        ({"pgbouncer_pool_mode": "sometimes"}, "pgbouncer_pool_mode", "session, transaction, statement"),
        ({"postgresql_users": [{"name": "app"}]}, "postgresql_users", "password"),
        ({"pgbouncer_auth_password": ""}, "pgbouncer_auth_password", "ansible-vault"),
        ({"pgbouncer_default_pool_size": -5}, "pgbouncer_default_pool_size", "1 or more"),
        ({"pgbouncer_max_prepared_statements": -1}, "pgbouncer_max_prepared_statements", "0 or more"),
        ({"postgresql_memory_mb": "lots"}, "postgresql_memory_mb", "256 or more"),
    ],
)
def test_bad_input_is_refused_before_any_change(host, extra_vars, variable, allowed):
    run = run_playbook(converge_playbook(), extra_vars)
    assert run.rc != 0
    assert variable in run.output
    assert allowed in run.output
    assert run.recap(), run.output
    assert run.changed() == 0, run.output


def test_prepared_statements_are_refused_on_an_old_pgbouncer(host):
    if pgbouncer_version(host) >= (1, 21):
        pytest.skip("this pgbouncer keeps prepared statements across transactions")
    run = run_playbook(converge_playbook(), {"pgbouncer_max_prepared_statements": 100})
    assert run.rc != 0
    assert "pgbouncer_max_prepared_statements is 100" in run.output
    assert "1.21 or later" in run.output
    assert run.changed() == 0, run.output
