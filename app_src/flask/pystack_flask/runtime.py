"""What is really serving this request: interpreter, JIT, WSGI server, process."""

from __future__ import annotations

import importlib.util
import os
import platform
import socket
import sys
from collections.abc import Mapping
from importlib.metadata import version
from typing import Any

# pyston-lite's enable() makes True immortal by giving it a refcount near 2**48; importing the
# module alone does not. CPython 3.12+ immortal objects stay far below that (about 2**32).
PYSTON_IMMORTAL_REFCOUNT = 2**48


def pyston_lite_active() -> bool:
    """True when the pyston-lite JIT is enabled in this process.

    pyston_lite_autoload enables it from a .pth file at start-up unless DISABLE_PYSTON is set
    (any value), so that switch is reflected here without reading it.
    """
    if platform.python_implementation() != "CPython":
        return False
    return sys.getrefcount(True) >= PYSTON_IMMORTAL_REFCOUNT


def pypy_jit_on() -> bool:
    """PyPy's JIT is compiled in on the usual platforms; the pystack virtualenv's pystack_jit.pth
    turns it off at start-up when PYSTACK_JIT=0 (app_jit: false) and says so."""
    info = getattr(sys, "pypy_translation_info", None)
    built = bool(info.get("translation.jit", True)) if info is not None else False
    return built and not getattr(sys.modules.get("pystack_jit"), "jit_off", False)


def cpython_jit_on() -> bool:
    """CPython 3.14+ built with its JIT runs it when PYTHON_JIT=1 (sys._jit)."""
    jit = getattr(sys, "_jit", None)
    return bool(jit is not None and jit.is_enabled())


def pyston_lite_installed() -> bool:
    """pyston-lite present but off (DISABLE_PYSTON): still a pyston node, with its JIT off."""
    return importlib.util.find_spec("pyston_lite") is not None


def detect_interpreter(implementation: str, pyston_active: bool, pyston_installed: bool = False) -> str:
    if implementation == "PyPy":
        return "pypy"
    if pyston_active or pyston_installed:
        return "pyston"
    return "cpython"


def detect_server(configured: str, modules: Mapping[str, Any]) -> str:
    """APP_SERVER wins; otherwise uWSGI (its embedded `uwsgi` module), granian or gunicorn (imported)."""
    if configured:
        return configured
    if "uwsgi" in modules:
        return "uwsgi"
    try:
        import uwsgi  # noqa: F401  (only importable inside a uWSGI process)
    except ImportError:
        pass
    else:
        return "uwsgi"
    if "granian" in modules:
        return "granian"
    if "gunicorn" in modules:
        return "gunicorn"
    return "unknown"


def interpreter_and_jit() -> tuple[str, bool]:
    """(`interpreter`, `jit`) as /runtime reports them; also used by the Celery tasks."""
    pyston = pyston_lite_active()
    implementation = platform.python_implementation()
    interpreter = detect_interpreter(
        implementation, pyston, implementation == "CPython" and pyston_lite_installed()
    )
    if interpreter == "pypy":
        return interpreter, pypy_jit_on()
    return interpreter, pyston or cpython_jit_on()


def runtime_info(
    configured_server: str, configured_interpreter: str, release: str, db_driver: str
) -> dict[str, Any]:
    interpreter, jit = interpreter_and_jit()
    return {
        "host": socket.gethostname(),
        "interpreter": interpreter,
        "python_version": platform.python_version(),
        "jit": jit,
        "server": detect_server(configured_server, sys.modules),
        "framework": "flask",
        "framework_version": version("flask"),
        # The PostgreSQL driver in use: psycopg (3) on CPython and Pyston, psycopg2cffi on PyPy.
        "db_driver": db_driver,
        "pid": os.getpid(),
        "release": release,
        "configured_interpreter": configured_interpreter,
    }
