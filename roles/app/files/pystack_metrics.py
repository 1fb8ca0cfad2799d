"""Request metrics of the app server's workers, and the endpoint Prometheus reads them from.

Installed by the pystack app role. pystack_serve records every request the
app answers (not its own liveness and deploy probes) when PYSTACK_METRICS_DIR
is set: its status class and how long the app took, from the call until the
app returned its response (WSGI; a streamed body's later chunks are not
counted, but for an app that starts the response in its first chunk, a
generator, the time runs until the server closes it) or sent its last body
chunk (ASGI). Each worker process counts in a
memory-mapped file of its own, DIR/<pid>.metrics, so the servers' processes
share no lock and a request costs no system call; threads of one worker
(gunicorn gthread, granian's blocking threads) take a lock of their own.

The reader runs beside the server (its own systemd unit, stopped with it):

    python3 pystack_metrics.py serve ADDRESS PORT DIR [requests|tasks]

On a Celery worker host the same files count tasks instead (celery(), hooked
into the worker processes by pystack_hooks/sitecustomize.py): the reader
serves them with `tasks` as pystack_tasks_total{outcome} and
pystack_task_duration_seconds.

and answers GET /metrics in Prometheus' text format with the sum over the
files. A file whose process has ended (a recycled or reloaded worker) is
added to DIR/retired.metrics and removed, so the counters never go back while
the server runs; a restart of the server starts them from zero (the runtime
folder goes with it), which Prometheus' rate() takes as a counter reset.

Standard library only, Python 3.7 and later: the reader runs on the host's
python3, the recorder in every interpreter the app role serves with.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import operator
import os
import socket
import struct
import sys
import threading
import time

MAGIC = b"PYSTKM01"
# Upper bounds of the duration histogram, in seconds (+Inf follows).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# Layout after the magic: a count per status class, a count per bucket
# (not cumulative; the last one is +Inf), the sum of durations.
_BUCKET0 = len(STATUSES)
_SUM = _BUCKET0 + len(BUCKETS) + 1
SLOTS = _SUM + 1
SIZE = len(MAGIC) + 8 * SLOTS
_FMT = f"<{SLOTS}d"
_SUFFIX = ".metrics"
RETIRED = "retired" + _SUFFIX


class Recorder:
    """Counts one process's requests in DIR/<pid>.metrics (opened again after a fork)."""

    def __init__(self, directory: str):
        self.directory = directory
        self._pid = -1
        self._map = None
        self._lock = threading.Lock()
        self.broken = False

    def _open(self):
        pid = os.getpid()
        # A worker forked while another thread held the lock would inherit it held.
        self._lock = threading.Lock()
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        fd = os.open(os.path.join(self.directory, f"{pid}{_SUFFIX}"), os.O_RDWR | os.O_CREAT, 0o640)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)
            view = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        view[: len(MAGIC)] = MAGIC
        self._map, self._pid = view, pid

    def record(self, status: int, seconds: float) -> None:
        # Metrics never fail a request: a folder that cannot be written
        # turns recording off in this process.
        if self.broken:
            return
        try:
            if self._pid != os.getpid():
                self._open()
            view = self._map
            klass = min(max(status // 100, 1), 5) - 1
            bucket = _BUCKET0 + bisect.bisect_left(BUCKETS, seconds)
            with self._lock:
                for slot, amount in ((klass, 1.0), (bucket, 1.0), (_SUM, seconds)):
                    offset = len(MAGIC) + 8 * slot
                    struct.pack_into("<d", view, offset, struct.unpack_from("<d", view, offset)[0] + amount)
        except (OSError, ValueError):
            self.broken = True


class _Recorded:
    """A response iterable that records its request when the server closes it."""

    def __init__(self, result, done):
        self._result = result
        self._done = done

    def __iter__(self):
        return iter(self._result)

    def close(self):
        try:
            if hasattr(self._result, "close"):
                self._result.close()
        finally:
            self._done()


def wsgi(app, recorder: Recorder):
    """The WSGI app, each request timed and counted."""

    def application(environ, start_response):
        seen = [0]

        def recording_start_response(status, headers, exc_info=None):
            with contextlib.suppress(ValueError):
                seen[0] = int(str(status)[:3])
            return start_response(status, headers, exc_info)

        start = time.perf_counter()

        def done():
            recorder.record(seen[0] or 500, time.perf_counter() - start)

        try:
            result = app(environ, recording_start_response)
        except BaseException:
            done()
            raise
        if seen[0]:
            done()
            return result
        # A generator (or middleware) that calls start_response at its first
        # iteration: the status is known when the server closes the response.
        return _Recorded(result, done)

    return application


def asgi(app, recorder: Recorder):
    """The ASGI app, each HTTP request timed and counted until its last body chunk."""

    async def application(scope, receive, send):
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        state = {"status": 500, "done": False}
        start = time.perf_counter()

        async def recording_send(message):
            kind = message.get("type")
            if kind == "http.response.start":
                state["status"] = int(message.get("status", 500))
            elif kind == "http.response.body" and not message.get("more_body", False) and not state["done"]:
                state["done"] = True
                recorder.record(state["status"], time.perf_counter() - start)
            await send(message)

        try:
            await app(scope, receive, recording_send)
        finally:
            if not state["done"]:
                state["done"] = True
                recorder.record(state["status"], time.perf_counter() - start)

    return application


# Celery's task outcomes in the same files (a worker host's reader serves them
# as pystack_tasks_total and pystack_task_duration_seconds): the status class
# slot of each outcome, and the task's run time.
TASK_OUTCOMES = {"succeeded": 200, "retried": 300, "revoked": 400, "failed": 500}


def celery(recorder: Recorder) -> None:
    """Count every task's outcome in recorder, from Celery's signals (in the worker processes)."""
    from celery import signals

    started: dict = {}

    def _id(request=None, sender=None, task_id=None) -> str:
        if task_id:
            return task_id
        if request is not None:
            return getattr(request, "id", "") or ""
        return getattr(getattr(sender, "request", None), "id", "") or ""

    def prerun(task_id=None, **_):
        started[task_id] = time.perf_counter()

    def finished(outcome: str, identity: str) -> None:
        began = started.pop(identity, None)
        recorder.record(TASK_OUTCOMES[outcome], time.perf_counter() - began if began is not None else 0.0)

    def success(sender=None, **_):
        finished("succeeded", _id(sender=sender))

    def failure(task_id=None, sender=None, **_):
        finished("failed", _id(sender=sender, task_id=task_id))

    def retry(request=None, sender=None, **_):
        finished("retried", _id(request=request, sender=sender))

    def revoked(request=None, sender=None, **_):
        finished("revoked", _id(request=request, sender=sender))

    signals.task_prerun.connect(prerun, weak=False)
    signals.task_success.connect(success, weak=False)
    signals.task_failure.connect(failure, weak=False)
    signals.task_retry.connect(retry, weak=False)
    signals.task_revoked.connect(revoked, weak=False)


def read(path: str):
    """The slots of one file, or None when it is not (yet) a metrics file."""
    with open(path, "rb") as handle:
        data = handle.read(SIZE)
    if len(data) < SIZE or data[: len(MAGIC)] != MAGIC:
        return None
    return list(struct.unpack_from(_FMT, data, len(MAGIC)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(path: str, values) -> None:
    temporary = path + ".tmp"
    with open(temporary, "wb") as handle:
        handle.write(MAGIC + struct.pack(_FMT, *values))
    os.replace(temporary, path)


def collect(directory: str):
    """(summed slots, live worker processes): ended processes' files folded into retired.metrics."""
    totals = [0.0] * SLOTS
    retired_path = os.path.join(directory, RETIRED)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:  # no request yet since the server started
        return totals, 0
    retired = (read(retired_path) if RETIRED in names else None) or [0.0] * SLOTS
    live = 0
    for name in names:
        if not name.endswith(_SUFFIX) or name == RETIRED:
            continue
        try:
            pid = int(name[: -len(_SUFFIX)])
            values = read(os.path.join(directory, name))
        except (ValueError, OSError):
            continue
        if values is None:
            continue
        if _alive(pid):
            live += 1
            totals = list(map(operator.add, totals, values))
        else:
            retired = list(map(operator.add, retired, values))
            # Kept before the file goes: a reader stopped in between never
            # loses a count (it may count one process twice, once).
            _write(retired_path, retired)
            os.unlink(os.path.join(directory, name))
    return list(map(operator.add, totals, retired)), live


def _number(value: float) -> str:
    return repr(int(value)) if value == int(value) else repr(value)


def _family(counter, label: str, counts, histogram, gauge, values, live: int) -> str:
    """One counter by label, the duration histogram and the live-process gauge, in text format.

    counter, histogram and gauge are (name, help) pairs; counts maps each label value to its slot.
    """
    lines = [f"# HELP {counter[0]} {counter[1]}", f"# TYPE {counter[0]} counter"]
    for value, slot in counts:
        lines.append(f'{counter[0]}{{{label}="{value}"}} {_number(values[slot])}')
    lines += [f"# HELP {histogram[0]} {histogram[1]}", f"# TYPE {histogram[0]} histogram"]
    cumulative = 0.0
    for index, bound in enumerate((*BUCKETS, None)):
        cumulative += values[_BUCKET0 + index]
        le = "+Inf" if bound is None else repr(bound)
        lines.append(f'{histogram[0]}_bucket{{le="{le}"}} {_number(cumulative)}')
    lines.append(f"{histogram[0]}_sum {values[_SUM]!r}")
    lines.append(f"{histogram[0]}_count {_number(cumulative)}")
    lines += [f"# HELP {gauge[0]} {gauge[1]}", f"# TYPE {gauge[0]} gauge", f"{gauge[0]} {live}"]
    return "\n".join(lines) + "\n"


def task_exposition(values, live: int) -> str:
    """The same slots as Celery task outcomes (a worker host's reader)."""
    return _family(
        ("pystack_tasks_total", "Tasks the workers ran, by outcome."),
        "outcome",
        [(outcome, code // 100 - 1) for outcome, code in TASK_OUTCOMES.items()],
        ("pystack_task_duration_seconds", "Time a task ran."),
        ("pystack_worker_processes", "Worker processes that have run tasks and still run."),
        values,
        live,
    )


def exposition(values, live: int) -> str:
    return _family(
        ("pystack_http_requests_total", "Requests the app answered, by status class."),
        "status",
        [(status, index) for index, status in enumerate(STATUSES)],
        ("pystack_http_request_duration_seconds", "Time the app took to answer a request."),
        ("pystack_app_worker_processes", "Processes of the app server that have answered requests and still run."),
        values,
        live,
    )


def serve(address: str, port: int, directory: str, kind: str = "requests") -> None:
    from http.server import BaseHTTPRequestHandler, HTTPServer

    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            with lock:
                body = (task_exposition if kind == "tasks" else exposition)(*collect(directory)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass  # Prometheus asks every few seconds: no line each time

    class Server(HTTPServer):
        address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

    Server((address, port), Handler).serve_forever()


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6) or sys.argv[1] != "serve" or sys.argv[5:] not in ([], ["requests"], ["tasks"]):
        sys.exit("usage: pystack_metrics.py serve ADDRESS PORT DIR [requests|tasks]")
    serve(sys.argv[2], int(sys.argv[3]), sys.argv[4], *sys.argv[5:])
