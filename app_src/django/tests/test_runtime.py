from __future__ import annotations

import os
import platform

import django
import pytest
from django.test import Client

try:  # pytest-django's name for it since 4.12 (Python 3.10 and up get that)
    from pytest_django.fixtures import Settings
except ImportError:  # pytest-django 4.11, the last for Python 3.9
    from pytest_django.fixtures import SettingsWrapper as Settings

from pystack_django import runtime
from pystack_django.runtime import detect_interpreter, detect_server

KEYS = {
    "host",
    "interpreter",
    "python_version",
    "jit",
    "server",
    "framework",
    "framework_version",
    "db_driver",
    "pid",
    "release",
    "configured_interpreter",
}


def test_runtime_contract(client: Client) -> None:
    response = client.get("/runtime")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == KEYS
    assert data["framework"] == "django"
    assert data["framework_version"] == django.get_version()
    assert data["db_driver"] == "sqlite3"  # tests/settings.py; psycopg or psycopg2cffi when deployed
    assert data["pid"] == os.getpid()
    assert data["python_version"] == platform.python_version()
    assert data["interpreter"] in ("cpython", "pyston", "pypy")
    assert data["jit"] is (data["interpreter"] != "cpython")
    assert data["server"] == "unknown"  # the test client is neither gunicorn nor uWSGI


def test_runtime_reports_configuration(client: Client, settings: Settings) -> None:
    settings.APP_SERVER = "gunicorn"
    settings.APP_INTERPRETER = "pyston"
    settings.APP_RELEASE = "20240101-abc"
    data = client.get("/runtime").json()
    assert data["server"] == "gunicorn"
    assert data["configured_interpreter"] == "pyston"
    assert data["release"] == "20240101-abc"


def test_detect_interpreter() -> None:
    assert detect_interpreter("PyPy", pyston_active=False) == "pypy"
    assert detect_interpreter("CPython", pyston_active=True) == "pyston"
    assert detect_interpreter("CPython", pyston_active=False) == "cpython"
    # pyston-lite installed but off (DISABLE_PYSTON): a pyston node with its JIT off.
    assert detect_interpreter("CPython", pyston_active=False, pyston_installed=True) == "pyston"


def test_pyston_detection_uses_immortal_true(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.platform, "python_implementation", lambda: "CPython")
    # raising=False: PyPy has no sys.getrefcount (pyston_lite_active never calls it there).
    monkeypatch.setattr(runtime.sys, "getrefcount", lambda obj: 2**48 + 17, raising=False)
    assert runtime.pyston_lite_active() is True
    monkeypatch.setattr(runtime.sys, "getrefcount", lambda obj: 120, raising=False)
    assert runtime.pyston_lite_active() is False


def test_detect_server() -> None:
    marker = object()
    assert detect_server("uwsgi", {}) == "uwsgi"
    assert detect_server("", {"uwsgi": marker, "gunicorn": marker}) == "uwsgi"
    assert detect_server("", {"gunicorn": marker}) == "gunicorn"
    assert detect_server("", {"granian": marker}) == "granian"
    assert detect_server("", {}) == "unknown"


class _Jit:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def is_enabled(self) -> bool:
        return self.enabled


def test_cpython_jit_is_read_from_sys_jit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.sys, "_jit", _Jit(True), raising=False)
    assert runtime.cpython_jit_on() is True
    monkeypatch.setattr(runtime.sys, "_jit", _Jit(False), raising=False)
    assert runtime.cpython_jit_on() is False
    monkeypatch.delattr(runtime.sys, "_jit", raising=False)
    assert runtime.cpython_jit_on() is False


def test_pypy_jit_off_is_what_pystack_jit_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.sys, "pypy_translation_info", {"translation.jit": True}, raising=False)
    monkeypatch.delitem(runtime.sys.modules, "pystack_jit", raising=False)
    assert runtime.pypy_jit_on() is True
    monkeypatch.setitem(runtime.sys.modules, "pystack_jit", type("M", (), {"jit_off": True}))
    assert runtime.pypy_jit_on() is False
