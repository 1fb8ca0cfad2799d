"""What a user of the common role sees on every host."""

from __future__ import annotations

import glob

import pytest
from stackhelpers import converge_playbook, run_playbook


def test_systemd_booted_cleanly(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    failed = host.run("systemctl --failed --no-legend --plain").stdout
    assert state == "running", failed


@pytest.mark.parametrize("package", ["curl", "procps", "tzdata", "jq"])
def test_packages_installed(host, package):
    assert host.package(package).is_installed


def test_time_zone(host):
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Europe/Berlin"
    assert host.file("/etc/timezone").content_string == "Europe/Berlin\n"
    assert host.run("date +%Z").stdout.strip() in {"CET", "CEST"}


def test_extra_cas_trusted(host):
    controller_cas = sorted(glob.glob("/usr/local/share/ca-certificates/*.crt"))
    if not controller_cas:
        pytest.skip("the controller has no extra CA certificates")
    bundle = host.file("/etc/ssl/certs/ca-certificates.crt").content_string
    for path in controller_cas:
        with open(path) as f:
            body = "".join(line for line in f if not line.startswith("-----")).split()
        installed = host.file(f"/usr/local/share/ca-certificates/pystack/{path.rsplit('/', 1)[1]}")
        assert installed.exists
        assert body[0] in bundle.split(), f"{path} is not in the host's CA bundle"


def test_kernel_settings_written_and_applied_where_possible(host):
    conf = host.file("/etc/sysctl.d/60-pystack.conf")
    assert "net.core.somaxconn = 4096" in conf.content_string
    assert "net.ipv4.ip_local_port_range = 1024 65000" in conf.content_string
    writable = host.run("test -w /proc/sys/net/core/somaxconn").rc == 0
    if writable:
        assert host.sysctl("net.core.somaxconn") == 4096


def test_services_get_the_open_files_limit(host):
    # A unit started now inherits the manager's default limit.
    # systemd cannot hand out more than its own hard limit, which a container
    # runtime may cap (the role says so when it does).
    pid1_hard = host.run("awk '/Max open files/ {print $5}' /proc/1/limits").stdout.strip()
    expected = 65536 if pid1_hard == "unlimited" else min(65536, int(pid1_hard))
    out = host.run("systemd-run --quiet --pipe --wait sh -c 'ulimit -n'")
    assert out.rc == 0, out.stderr
    assert int(out.stdout.strip()) == expected


def test_login_sessions_get_the_open_files_limit(host):
    content = " ".join(host.file("/etc/security/limits.d/60-pystack.conf").content_string.split())
    assert "* hard nofile 65536" in content


def test_deploy_user_is_unprivileged(host):
    user = host.user("deploy")
    assert user.exists
    assert user.group == "deploy"
    assert "sudo" not in user.groups
    assert not host.file("/etc/sudoers.d/60-pystack-deploy").exists
    assert host.run("sudo -n -l -U deploy").stdout.find("may run the following") == -1


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("common_kernel_tuning", "sometimes", "auto, enforce, skip"),
        ("common_timezone", "Mars/Olympus_Mons", "Etc/UTC"),
        ("common_nofile_limit", 10, "1024 to 1048576"),
    ],
)
def test_bad_input_is_refused_before_any_change(host, variable, value, allowed):
    # Only one host needs to run this; the play itself covers all of them.
    if host.backend.get_hostname() != "pystack-common-bookworm":
        pytest.skip("run once")
    run = run_playbook(converge_playbook(), {variable: value})
    assert run.rc != 0
    assert variable in run.output
    assert allowed in run.output
    assert run.recap(), run.output
    assert run.changed() == 0, run.output


def test_end_of_life_release_is_named_in_the_play(host):
    # Debian 11's security support (LTS) ended in August 2026: its host still
    # converges, and the play warns about that host and no other.
    if host.backend.get_hostname() != "pystack-common-bookworm":
        pytest.skip("run once")
    run = run_playbook(converge_playbook(), None, "--tags", "common_support")
    assert run.rc == 0, run.output
    text = " ".join(run.output.split())  # the callback may wrap a long message
    assert text.count("WARNING: pystack-common-") == 1, run.output
    assert "WARNING: pystack-common-bullseye runs Debian 11" in text
    assert "security support ended on 2026-08-31" in text
    assert run.changed() == 0, run.output
