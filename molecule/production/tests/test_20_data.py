"""PostgreSQL on the db host, pgbouncer on a host of its own in front of it: the topology the
example's optional pgbouncer group gives."""

from __future__ import annotations

from prod import psql, vault


def address(host) -> str:
    return host.check_output("hostname -I").split()[0]


def test_postgresql_runs_on_the_db_host_and_pgbouncer_does_not(db, pooler, apps, worker):
    assert db.service("postgresql@17-main").is_running
    assert not db.exists("pgbouncer")
    hba = db.file("/etc/postgresql/17/main/pg_hba.conf").content_string
    # The pooler host, and the app nodes for their direct sessions; not the worker.
    assert f"{address(pooler)}/32" in hba
    for app in apps:
        assert f"{address(app)}/32" in hba
    assert f"{address(worker)}/32" not in hba


def test_pgbouncer_pools_the_db_hosts_postgresql(db, pooler):
    assert pooler.service("pgbouncer").is_running
    # No PostgreSQL server here (pgbouncer's package brings only postgresql-common).
    assert pooler.run("ls /etc/postgresql").stdout.strip() == ""
    ini = pooler.file("/etc/pgbouncer/pgbouncer.ini").content_string
    assert f"app = host={address(db)} port=5432 dbname=app" in ini
    # The app's login, through this pooler, reaches the database on the db host.
    password = vault()["vault_postgresql_app_password"]
    out = pooler.run(
        f"PGPASSWORD={password} psql -X -A -t -h 127.0.0.1 -p 6432 -U app -d app -c 'SELECT inet_server_addr()'"
    )
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == address(db)
    assert psql(db, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'") != "0"
