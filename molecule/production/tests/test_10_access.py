"""Every host is reached as an operator reaches real hosts: over SSH, as the admin user, with
sudo; the secrets come from an ansible-vault encrypted vault.yml."""

from __future__ import annotations

import re

from prod import VAULT, vault
from stackhelpers import env_file


def test_reached_over_ssh_as_the_admin_user_through_sudo(host):
    variables = host.ansible.get_variables()
    assert variables["ansible_connection"] == "ansible.builtin.ssh"
    assert (variables["ansible_user"], variables["ansible_become"]) == ("admin", True)
    # The commands of this very test come in over SSH as admin and run through sudo.
    assert host.check_output("id -un") == "root"
    assert host.check_output("echo $SUDO_USER") == "admin"
    # sshd's own login lines, matched here rather than by a grep on the host: each command run
    # through Ansible is logged ("Invoked with ...") in ssh.service's journal too (no logind in
    # the containers keeps the sessions in the service), so a grep would find its own pattern.
    journal = host.check_output("journalctl -u ssh --no-pager -o cat")
    logins = re.findall(r"^Accepted (\S+) for (\S+) from ", journal, re.MULTILINE)
    assert logins, journal[-2000:]
    assert set(logins) == {("publickey", "admin")}, sorted(set(logins))


def test_the_secrets_come_from_the_encrypted_vault(apps):
    text = VAULT.read_text()
    assert text.startswith("$ANSIBLE_VAULT;1.1;AES256\n")
    secrets = vault()
    assert all(value not in text for value in secrets.values())
    for app in apps:
        env = env_file(app)
        assert f":{secrets['vault_postgresql_app_password']}@" in env["DATABASE_URL"]
        assert f":{secrets['vault_redis_app_password']}@" in env["REDIS_URL"]
        assert env["SECRET_KEY"] == secrets["vault_app_secret_key"]
