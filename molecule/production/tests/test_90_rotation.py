"""The app's database and Redis passwords rotated in the vault and applied by one site.yml run,
while a client writes and reads through both balancers: no request fails, every app and worker
host ends on the new passwords, and the old ones no longer get in."""

from __future__ import annotations

import json
import time

from prod import PUBLIC, VAULT, VAULT_PASSWORD, call, psql
from stackhelpers import PROJECT, Load, env_file, run_playbook
from vaultfile import rotate

ROTATED = ["vault_postgresql_app_password", "vault_redis_app_password"]


def logs_in(host, user: str, password: str, port: int = 5432) -> bool:
    out = host.run(
        f"PGPASSWORD={password} PGCONNECT_TIMEOUT=5 psql -X -A -t -h 127.0.0.1 -p {port} -U {user} -d app -c 'SELECT 1'"
    )
    return out.rc == 0


def redis_answers(cache, password: str) -> bool:
    out = cache.run(f"REDISCLI_AUTH={password} redis-cli --user app -p 6380 PING")
    return out.stdout.strip() == "PONG"


def test_rotated_passwords_reach_every_client_in_one_run_without_a_failed_request(apps, worker, db, pooler, cache):
    old, new = rotate(VAULT, VAULT_PASSWORD, ROTATED)
    login_before = json.loads(db.check_output("cat /etc/ansible/facts.d/postgresql.fact"))["logins"]["app"]
    targets = [f"{url}/" for url in PUBLIC] + [("POST", f"{url}/notes", {"body": "rotation"}) for url in PUBLIC]
    with Load(targets, rate=5) as load:
        run = run_playbook(PROJECT / "playbooks" / "site.yml")
    assert run.rc == 0, run.output[-4000:]
    assert len(load.ok()) > 100, load.summary()
    assert load.failed() == [], load.summary()

    # The app moved to the user's other login, which took the new password.
    published = json.loads(db.check_output("cat /etc/ansible/facts.d/postgresql.fact"))
    login = published["logins"]["app"]
    assert login != login_before and {login, login_before} == {"app", "app_alt"}
    assert published["previous"] == {"app": ""}
    database, redis = new["vault_postgresql_app_password"], new["vault_redis_app_password"]
    for client in [*apps, worker]:
        env = env_file(client)
        assert env["DATABASE_URL"].startswith(f"postgresql://{login}:{database}@")
        assert f"app:{redis}@" in env["REDIS_URL"] and f"app:{redis}@" in env["RQ_REDIS_URL"]

    # The new passwords get in, directly and through pgbouncer; the old ones no longer do.
    assert logs_in(db, login, database) and logs_in(pooler, login, database, port=6432)
    assert not logs_in(db, login_before, old["vault_postgresql_app_password"])
    assert not logs_in(pooler, login_before, old["vault_postgresql_app_password"], port=6432)
    assert redis_answers(cache, redis)
    assert not redis_answers(cache, old["vault_redis_app_password"])
    # Objects the new login creates belong to the user, as before.
    assert psql(db, "SELECT tableowner FROM pg_tables WHERE tablename = 'notes'") == "app"


def test_the_worker_runs_jobs_with_the_new_passwords(db, worker):
    note = call("POST", f"{PUBLIC[0]}/notes", {"body": "after the rotation"})[1]["id"]
    call("POST", f"{PUBLIC[1]}/jobs", {"note_id": note})
    deadline = time.monotonic() + 60
    while not (seen := psql(db, f"SELECT processed_by FROM note_stats WHERE note_id = {note}")):
        assert time.monotonic() < deadline, "the worker did not run the job"
        time.sleep(1)
    assert seen == worker.check_output("hostname")
