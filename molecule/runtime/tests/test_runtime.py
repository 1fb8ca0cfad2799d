"""The interpreter switch: each host's virtualenv runs what app_interpreter says."""

from __future__ import annotations

import json

import pytest
from stackhelpers import converge_playbook, run_playbook

PROBE = (
    "import json, platform, sys; pypy = platform.python_implementation() == 'PyPy'; "
    "print(json.dumps({'impl': platform.python_implementation(), 'version': platform.python_version(), "
    "'pyston': not pypy and sys.getrefcount(True) >= 2 ** 48, 'six': __import__('six').__version__}))"
)


def probe(host, env: str = "") -> dict:
    interpreter = host.ansible.get_variables()["app_interpreter"]
    out = host.run(f'{env} /opt/runtime-test/venv-{interpreter}/bin/python -c "{PROBE}"')
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def test_virtualenv_runs_the_configured_interpreter(host):
    interpreter = host.ansible.get_variables()["app_interpreter"]
    seen = probe(host)
    assert seen["six"] == "1.16.0"
    if interpreter == "cpython":
        assert seen["impl"] == "CPython"
        assert not seen["pyston"]
    elif interpreter == "pyston":
        assert seen["impl"] == "CPython"
        assert seen["version"].startswith("3.9.")
        assert seen["pyston"], "pyston-lite is installed but its JIT is not active"
    else:
        assert seen["impl"] == "PyPy"


def test_pyston_can_be_switched_off_for_ab_runs(host):
    if host.ansible.get_variables()["app_interpreter"] != "pyston":
        pytest.skip("pyston hosts only")
    assert not probe(host, "DISABLE_PYSTON=1")["pyston"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"app_interpreter": "jython"}, "app_interpreter"),
        # Debian 13's CPython 3.13 is outside pyston-lite's range.
        ({"app_interpreter": "pyston"}, "CPython 3.13"),
    ],
)
def test_bad_interpreter_choice_is_refused_before_any_change(host, extra, needle):
    if host.backend.get_hostname() != "pystack-runtime-cpython":
        pytest.skip("run once")
    run = run_playbook(converge_playbook(), extra, "--limit", "pystack-runtime-cpython")
    assert run.rc != 0
    assert needle in run.output
    assert "app_interpreter" in run.output
    assert run.recap(), run.output
    assert run.changed() == 0, run.output
