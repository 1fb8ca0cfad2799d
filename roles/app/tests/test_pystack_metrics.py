"""pystack_metrics: what the workers record is what the reader serves, across processes."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "files"))

import contextlib

import pystack_metrics as metrics


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in:\n{text}")


def wsgi_app(environ, start_response):
    if environ.get("RAISE"):
        raise RuntimeError("the app failed")
    start_response(environ["STATUS"], [])
    return [b"ok"]


def call(app, status="200 OK", **extra):
    return app({"STATUS": status, **extra}, lambda *args: None)


def test_counts_by_status_class_and_duration(tmp_path):
    app = metrics.wsgi(wsgi_app, metrics.Recorder(str(tmp_path)))
    for status in ["200 OK"] * 3 + ["302 Found", "404 Not Found", "503 Service Unavailable"]:
        call(app, status)
    with contextlib.suppress(RuntimeError):
        call(app, RAISE=1)
    text = metrics.exposition(*metrics.collect(str(tmp_path)))
    assert sample(text, 'pystack_http_requests_total{status="2xx"}') == 3
    assert sample(text, 'pystack_http_requests_total{status="3xx"}') == 1
    assert sample(text, 'pystack_http_requests_total{status="4xx"}') == 1
    # A 503 answered and an exception the server turns into a 500.
    assert sample(text, 'pystack_http_requests_total{status="5xx"}') == 2
    assert sample(text, "pystack_http_request_duration_seconds_count") == 7
    assert sample(text, 'pystack_http_request_duration_seconds_bucket{le="+Inf"}') == 7
    assert sample(text, "pystack_app_worker_processes") == 1


def test_threads_of_one_worker_lose_no_count(tmp_path):
    app = metrics.wsgi(wsgi_app, metrics.Recorder(str(tmp_path)))
    threads = [threading.Thread(target=lambda: [call(app) for _ in range(2000)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = metrics.exposition(*metrics.collect(str(tmp_path)))
    assert sample(text, 'pystack_http_requests_total{status="2xx"}') == 8000


def test_an_ended_worker_keeps_its_counts_and_its_file_goes(tmp_path):
    recorder = metrics.Recorder(str(tmp_path))
    app = metrics.wsgi(wsgi_app, recorder)
    call(app)
    pid = os.fork()
    if pid == 0:  # a worker forked from the first: a file of its own
        call(app, "500 Internal Server Error")
        call(app)
        os._exit(0)
    os.waitpid(pid, 0)
    assert f"{pid}.metrics" in os.listdir(tmp_path)
    text = metrics.exposition(*metrics.collect(str(tmp_path)))
    assert f"{pid}.metrics" not in os.listdir(tmp_path)
    assert sample(text, 'pystack_http_requests_total{status="2xx"}') == 2
    assert sample(text, 'pystack_http_requests_total{status="5xx"}') == 1
    assert sample(text, "pystack_app_worker_processes") == 1
    # Read again: the retired counts are counted once.
    again = metrics.exposition(*metrics.collect(str(tmp_path)))
    assert sample(again, "pystack_http_request_duration_seconds_count") == 3


def test_asgi_until_the_last_body_chunk(tmp_path):
    recorder = metrics.Recorder(str(tmp_path))

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 201})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await asyncio.sleep(0.06)
        await send({"type": "http.response.body", "body": b"b"})

    async def sent(message):
        pass

    asyncio.run(metrics.asgi(app, recorder)({"type": "http"}, None, sent))
    text = metrics.exposition(*metrics.collect(str(tmp_path)))
    assert sample(text, 'pystack_http_requests_total{status="2xx"}') == 1
    assert sample(text, 'pystack_http_request_duration_seconds_bucket{le="0.05"}') == 0
    assert sample(text, 'pystack_http_request_duration_seconds_bucket{le="0.1"}') == 1


def test_a_folder_that_cannot_be_written_never_fails_a_request(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    app = metrics.wsgi(wsgi_app, metrics.Recorder(str(blocker / "metrics")))
    assert call(app) == [b"ok"]


def test_the_reader_answers_prometheus(tmp_path):
    app = metrics.wsgi(wsgi_app, metrics.Recorder(str(tmp_path)))
    call(app)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    threading.Thread(target=metrics.serve, args=("127.0.0.1", port, str(tmp_path)), daemon=True).start()
    for _ in range(50):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                body = response.read().decode()
                break
        except OSError:
            threading.Event().wait(0.1)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert sample(body, 'pystack_http_requests_total{status="2xx"}') == 1


def test_a_generator_app_is_counted_with_the_status_it_sends(tmp_path):
    def generator_app(environ, start_response):
        start_response("201 Created", [])
        yield b"a"
        yield b"b"

    app = metrics.wsgi(generator_app, metrics.Recorder(str(tmp_path)))
    result = app({}, lambda *args: None)
    assert b"".join(result) == b"ab"
    result.close()
    text = metrics.exposition(*metrics.collect(str(tmp_path)))
    assert sample(text, 'pystack_http_requests_total{status="2xx"}') == 1
    assert sample(text, 'pystack_http_requests_total{status="5xx"}') == 0


class _Signal:
    def __init__(self):
        self.receivers = []

    def connect(self, receiver, weak=True):
        self.receivers.append(receiver)

    def send(self, **kwargs):
        for receiver in self.receivers:
            receiver(**kwargs)


def test_celery_task_outcomes_are_counted_from_its_signals(tmp_path, monkeypatch):
    import types

    signals = types.SimpleNamespace(
        **{name: _Signal() for name in ("task_prerun", "task_success", "task_failure", "task_retry", "task_revoked")}
    )
    celery = types.ModuleType("celery")
    celery.signals = signals
    monkeypatch.setitem(sys.modules, "celery", celery)
    monkeypatch.setitem(sys.modules, "celery.signals", signals)
    metrics.celery(metrics.Recorder(str(tmp_path)))

    def task(identity):
        return types.SimpleNamespace(request=types.SimpleNamespace(id=identity))

    for identity in ("a", "b", "c"):
        signals.task_prerun.send(task_id=identity, sender=task(identity))
    signals.task_success.send(sender=task("a"), result=1)
    signals.task_failure.send(task_id="b", sender=task("b"), exception=ValueError())
    signals.task_retry.send(request=types.SimpleNamespace(id="c"), sender=task("c"))
    signals.task_revoked.send(request=types.SimpleNamespace(id="d"), sender=task("d"))
    text = metrics.task_exposition(*metrics.collect(str(tmp_path)))
    for outcome in ("succeeded", "failed", "retried", "revoked"):
        assert sample(text, f'pystack_tasks_total{{outcome="{outcome}"}}') == 1
    assert sample(text, "pystack_task_duration_seconds_count") == 4
    assert "pystack_http_requests_total" not in text
