"""The app server's entry point, installed by the pystack app role.

The server (gunicorn, uWSGI) runs `pystack_serve:application`: the app's own
WSGI callable, named by PYSTACK_APP_MODULE ("module:attribute", or
"module:factory()" for an app factory), behind one check. A GET of
/.pystack/deploy from loopback, carrying the deploy's token in
X-Pystack-Probe, is answered here with what this worker really runs: the
release its code was imported from, the interpreter, its JIT and the server.
Every other request goes to the app untouched. The token is taken out of
os.environ before the app is imported, so the app never sees it.

The deploy also runs this file before it switches to a release:

    python pystack_serve.py check MODULE PATH [HOST]

in the release directory, with the app's environment: it imports the app
and calls it once for PATH (a GET from loopback, Host HOST or 127.0.0.1)
without any server.
Exit 0 when the answer is 2xx or 3xx; otherwise the status, or the app's
traceback, and exit 1.
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import os
import platform
import re
import sys
import traceback

PROBE_PATH = "/.pystack/deploy"
_RELEASES = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "releases")
_TOKEN = os.environ.pop("PYSTACK_PROBE_TOKEN", "")


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
        raise TypeError(f"{spec} is {type(obj).__name__}, not a WSGI callable")
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
    if platform.python_implementation() == "PyPy":
        return "pypy", True
    if sys.getrefcount(True) >= 2**48:  # pyston-lite's immortal objects
        return "pyston", True
    return "cpython", False


def _server() -> str:
    if "uwsgi" in sys.modules or "UWSGI_ORIGINAL_PROC_NAME" in os.environ:
        return "uwsgi"
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
            "pid": os.getpid(),
        }
    ).encode()


def wrap(app, release: str, token: str):
    def application(environ, start_response):
        if (
            environ.get("PATH_INFO") == PROBE_PATH
            and token
            and environ.get("HTTP_X_PYSTACK_PROBE") == token
            and environ.get("REMOTE_ADDR") in ("127.0.0.1", "::1")
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

    try:
        result = app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
    except BaseException:
        print(f"GET {path} raised in the app:", file=sys.stderr)
        traceback.print_exc()
        return 1
    status = seen.get("status", "")
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
        application = wrap(load(_spec), _release_of(_spec), _TOKEN)
