"""Through either balancer: writes land in PostgreSQL behind pgbouncer, served by both nodes,
and a job enqueued through the app runs on the worker."""

from __future__ import annotations

import time
import uuid

from prod import PUBLIC, call, psql


def test_notes_written_through_both_balancers_land_in_postgresql_from_both_nodes(db, apps):
    tag = f"e2e-{uuid.uuid4().hex[:8]}"
    for i in range(20):
        status, body = call("POST", f"{PUBLIC[i % 2]}/notes", {"body": f"{tag}-{i}"})
        assert status == 201, body
    assert psql(db, f"SELECT count(*) FROM notes WHERE body LIKE '{tag}-%'") == "20"
    for app in apps:
        served = app.check_output("journalctl -u pystack-app --no-pager -o cat | grep -c 'POST /notes' || true")
        assert int(served) > 0, app.backend.get_hostname()


def test_a_job_enqueued_through_the_app_runs_on_the_worker(db, worker):
    _, note = call("POST", f"{PUBLIC[0]}/notes", {"body": "for the worker"})
    status, job = call("POST", f"{PUBLIC[1]}/jobs", {"note_id": note["id"]})
    assert status == 202, job
    deadline = time.monotonic() + 60
    while not (seen := psql(db, f"SELECT processed_by FROM note_stats WHERE note_id = {note['id']}")):
        assert time.monotonic() < deadline, "the worker did not run the job"
        time.sleep(1)
    assert seen == worker.check_output("hostname")
