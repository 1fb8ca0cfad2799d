"""The app server's entry point, installed by the pystack app role.

The server (gunicorn, uWSGI, granian) runs `pystack_serve:application`: the
app's own WSGI or ASGI callable (PYSTACK_APP_PROTOCOL), named by
PYSTACK_APP_MODULE ("module:attribute", or "module:factory()" for an app
factory), behind two checks. GET /.pystack/live from anyone who is not
forwarded by a proxy (no X-Forwarded-For: the balancer's health check, not
its clients) is answered here with 200: this worker runs and has imported the
app, whatever the app's dependencies do, so the balancer takes a node out when
the node is broken, not when a shared database blinks. A GET of
/.pystack/deploy from the node itself
(loopback, or an address in PYSTACK_PROBE_PEERS), carrying the deploy's
token in X-Pystack-Probe, is answered here with what this worker really
runs: the release its code was imported from, the interpreter, whether its
JIT is on, the server and the protocol. Every other request goes to the app
untouched (timed and counted by pystack_metrics, beside this file, when
PYSTACK_METRICS_DIR is set). The token is taken out of os.environ before
the app is imported, so the app never sees it.

The deploy also runs this file before it switches to a release:

    python pystack_serve.py check MODULE PATH [HOST]

in the release directory, with the app's environment: it imports the app
and calls it once for PATH (a GET from loopback, Host HOST or 127.0.0.1)
without any server, as WSGI or ASGI after PYSTACK_APP_PROTOCOL.
Exit 0 when the answer is 2xx or 3xx; otherwise the status, or the app's
traceback, and exit 1.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.util
import io
import json
import os
import platform
import re
import sys
import traceback

PROBE_PATH = "/.pystack/deploy"
LIVE_PATH = "/.pystack/live"
_ALIVE = b'{"status": "alive"}'
_ALIVE_HEADERS = [
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(_ALIVE))),
    ("Cache-Control", "no-store"),
]
_RELEASES = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "releases")
_TOKEN = os.environ.pop("PYSTACK_PROBE_TOKEN", "")
_PEERS = frozenset(["127.0.0.1", "::1", *os.environ.pop("PYSTACK_PROBE_PEERS", "").split()])
PROTOCOL = os.environ.get("PYSTACK_APP_PROTOCOL", "wsgi")


def load(spec: str):
    """The WSGI callable named by "module:attribute" or "module:factory(args)", as gunicorn reads it."""
    module_name, _, target = spec.partition(":")
    target = target or "application"
    call = re.fullmatch(r"([\w.]+)\((.*)\)", target)
    obj = importlib.import_module(module_name)
    for part in (call.group(1) if call else target).split("."):
        obj = getattr(obj, part)
    if call:
        # Literal arguments only, positional or keyword: f(1, "x", debug=True).
        node = ast.parse(f"f({call.group(2)})", mode="eval").body
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        obj = obj(*args, **kwargs)
    if not callable(obj):
        raise TypeError(f"{spec} is {type(obj).__name__}, not a {PROTOCOL.upper()} callable")
    return obj


def _release_of(spec: str) -> str:
    """The release the app's module was imported from (resolved now, at import)."""
    module = sys.modules.get(spec.partition(":")[0])
    places = [getattr(module, "__file__", None) or "", os.getcwd()]
    for place in places:
        real = os.path.realpath(place)
        if real.startswith(_RELEASES + os.sep):
            return real[len(_RELEASES) + 1 :].split(os.sep, 1)[0]
    return ""


def _interpreter() -> tuple[str, bool]:
    """The interpreter and whether its JIT is on in this process, as each one tells it."""
    if platform.python_implementation() == "PyPy":
        # Built with a JIT on the usual platforms; the virtualenv's pystack_jit.pth
        # turns it off at start-up when PYSTACK_JIT=0 and records that it did.
        built = bool(getattr(sys, "pypy_translation_info", {}).get("translation.jit", True))
        return "pypy", built and not getattr(sys.modules.get("pystack_jit"), "jit_off", False)
    if sys.getrefcount(True) >= 2**48:  # pyston-lite's immortal objects: its JIT is on
        return "pyston", True
    if importlib.util.find_spec("pyston_lite") is not None:  # installed, off (DISABLE_PYSTON)
        return "pyston", False
    jit = getattr(sys, "_jit", None)  # CPython 3.14+: on when built with it and PYTHON_JIT=1
    return "cpython", bool(jit is not None and jit.is_enabled())


def _server() -> str:
    if "uwsgi" in sys.modules or "UWSGI_ORIGINAL_PROC_NAME" in os.environ:
        return "uwsgi"
    if "granian" in sys.modules:
        return "granian"
    if "gunicorn" in sys.modules:
        return "gunicorn"
    return ""


def _report(release: str) -> bytes:
    interpreter, jit = _interpreter()
    return json.dumps(
        {
            "release": release,
            "interpreter": interpreter,
            "jit": jit,
            "python_version": platform.python_version(),
            "server": _server(),
            "protocol": PROTOCOL,
            "pid": os.getpid(),
        }
    ).encode()


def wrap(app, release: str, token: str):
    def application(environ, start_response):
        if environ.get("PATH_INFO") == LIVE_PATH and "HTTP_X_FORWARDED_FOR" not in environ:
            start_response("200 OK", _ALIVE_HEADERS)
            return [_ALIVE]
        if (
            environ.get("PATH_INFO") == PROBE_PATH
            and token
            and environ.get("HTTP_X_PYSTACK_PROBE") == token
            and environ.get("REMOTE_ADDR") in _PEERS
        ):
            body = _report(release)
            start_response(
                "200 OK",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Cache-Control", "no-store"),
                ],
            )
            return [body]
        return app(environ, start_response)

    return application


def wrap_asgi(app, release: str, token: str):
    async def application(scope, receive, send):
        if (
            scope["type"] == "http"
            and scope.get("path") == LIVE_PATH
            and b"x-forwarded-for" not in dict(scope.get("headers") or [])
        ):
            headers = [(name.lower().encode(), value.encode()) for name, value in _ALIVE_HEADERS]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": _ALIVE})
            return
        if (
            scope["type"] == "http"
            and scope.get("path") == PROBE_PATH
            and token
            and dict(scope.get("headers") or []).get(b"x-pystack-probe", b"").decode("latin-1") == token
            and (scope.get("client") or ("",))[0] in _PEERS
        ):
            body = _report(release)
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return application


def _call_asgi(app, path_info: str, query: str, host: str) -> tuple[str, bytes]:
    """One GET through an ASGI app, in this process: (status line, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path_info,
        "raw_path": path_info.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", host.encode()), (b"user-agent", b"pystack-deploy-check")],
        "client": ("127.0.0.1", 0),
        "server": (host.partition(":")[0], 80),
        "state": {},
    }
    seen: dict[str, object] = {"body": b""}

    async def lifespan(message_type: str, inbox: asyncio.Queue, outbox: asyncio.Queue) -> bool:
        """Send one lifespan event; False when the app does not do lifespan (as servers allow)."""
        await inbox.put({"type": message_type})
        reply = await outbox.get()
        if reply is None:  # the app raised on the lifespan scope: no lifespan support
            return False
        if reply["type"].endswith(".failed"):
            raise RuntimeError(f"{message_type} failed: {reply.get('message', '')}")
        return True

    async def main() -> None:
        # Lifespan first, as granian and uvicorn run it: apps (Starlette,
        # FastAPI) set up their state there.
        inbox: asyncio.Queue = asyncio.Queue()
        outbox: asyncio.Queue = asyncio.Queue()

        async def run_lifespan():
            try:
                await app({"type": "lifespan", "asgi": scope["asgi"], "state": scope["state"]}, inbox.get, outbox.put)
            except Exception:
                await outbox.put(None)

        lifespan_task = asyncio.ensure_future(run_lifespan())
        supported = await lifespan("lifespan.startup", inbox, outbox)

        # The request once; then, like a server, nothing until the response
        # is complete, and a disconnect after it.
        done = asyncio.Event()
        requested = []

        async def receive():
            if not requested:
                requested.append(True)
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                seen["status"] = str(message["status"])
            elif message["type"] == "http.response.body":
                seen["body"] = seen["body"] + message.get("body", b"")
                if not message.get("more_body", False):
                    done.set()

        try:
            await app(scope, receive, send)
        finally:
            if supported:
                await lifespan("lifespan.shutdown", inbox, outbox)
            await lifespan_task

    asyncio.run(main())
    return str(seen.get("status", "")), seen["body"]


def _call_wsgi(app, path_info: str, query: str, host: str) -> tuple[str, bytes]:
    """One GET through a WSGI app, in this process: (status line, body)."""
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_NAME": host.partition(":")[0],
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "HTTP_USER_AGENT": "pystack-deploy-check",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    seen: dict[str, str] = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = status
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return seen.get("status", ""), body


def check(spec: str, path: str, host: str = "127.0.0.1") -> int:
    """Import the app and ask it for `path` once, in this process. 0 when 2xx or 3xx."""
    sys.path.insert(0, os.getcwd())
    try:
        app = load(spec)
    except BaseException:
        print(f"importing the app ({spec}) failed:", file=sys.stderr)
        traceback.print_exc()
        return 1
    path_info, _, query = path.partition("?")
    call = _call_asgi if PROTOCOL == "asgi" else _call_wsgi
    try:
        status, body = call(app, path_info, query, host)
    except BaseException:
        print(f"GET {path} raised in the app ({PROTOCOL.upper()}):", file=sys.stderr)
        traceback.print_exc()
        return 1
    if status[:1] in ("2", "3"):
        print(f"GET {path}: {status}")
        return 0
    print(f"GET {path} answered {status or 'nothing'}:", file=sys.stderr)
    print(body[:2000].decode("utf-8", "replace"), file=sys.stderr)
    return 1


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5) or sys.argv[1] != "check":
        sys.exit("usage: pystack_serve.py check MODULE:CALLABLE PATH [HOST]")
    sys.exit(check(*sys.argv[2:]))
else:
    _spec = os.environ.get("PYSTACK_APP_MODULE", "")
    if _spec:
        _app = load(_spec)
        _metrics_dir = os.environ.get("PYSTACK_METRICS_DIR", "")
        if _metrics_dir:
            # Every request the app answers, timed and counted (pystack_metrics,
            # beside this file); the checks above it are not.
            import pystack_metrics

            _recorder = pystack_metrics.Recorder(_metrics_dir)
            _app = (pystack_metrics.asgi if PROTOCOL == "asgi" else pystack_metrics.wsgi)(_app, _recorder)
        _wrap = wrap_asgi if PROTOCOL == "asgi" else wrap
        application = _wrap(_app, _release_of(_spec), _TOKEN)
