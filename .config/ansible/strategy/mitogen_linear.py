"""The linear strategy with Mitogen's connection multiplexing.

`make test` and `make lab` set ANSIBLE_STRATEGY=mitogen_linear (Makefile):
each host gets one persistent Python interpreter that runs every module, in
place of a new `docker exec` or SSH session, a copied module and a fresh
Python for each task. On the 2-core CI machine that is most of the CPU a
converge costs the controller and the hosts.

Mitogen redirects connection plugins by their short names ("docker",
"ssh", "local"); this project's inventories and molecule name them in full
(community.docker.docker, ansible.builtin.ssh), which Mitogen would pass to
the stock plugins unchanged. This shim maps the full names to the short
ones before Mitogen's own redirect. `ANSIBLE_STRATEGY=linear make test`
runs without Mitogen.
"""

import getpass

import ansible_mitogen.loaders
import ansible_mitogen.strategy
import ansible_mitogen.transport_config

FULL_NAMES = {
    "community.docker.docker": "docker",
    "ansible.builtin.ssh": "ssh",
    "ansible.legacy.ssh": "ssh",
    "ansible.builtin.local": "local",
    "ansible.legacy.local": "local",
}

ansible_mitogen.strategy.REDIRECTED_CONNECTION_PLUGINS = tuple(
    ansible_mitogen.strategy.REDIRECTED_CONNECTION_PLUGINS
) + tuple(FULL_NAMES)

_mitogen_get_with_context = ansible_mitogen.strategy.wrap_connection_loader__get_with_context


def _get_with_context(name, *args, **kwargs):
    return _mitogen_get_with_context(FULL_NAMES.get(name, name), *args, **kwargs)


# Mitogen's _install_wrappers() reads this module attribute when a play starts.
ansible_mitogen.strategy.wrap_connection_loader__get_with_context = _get_with_context

# Ansible skips become when the login is already the become user
# (become_allow_same_user false: root on the controller, which has no sudo,
# running a delegate_to localhost task of a play with ansible_become). Mitogen
# skips it too, but takes the login of the local connection from
# ansible_user (the remote hosts' login, "admin" in inventories/example);
# Ansible's own local plugin runs as the user running Ansible, whatever
# ansible_user says.
_remote_user = ansible_mitogen.transport_config.PlayContextSpec.remote_user


def _remote_user_or_local(self):
    if self.transport() == "local":
        return getpass.getuser()
    return _remote_user(self)


ansible_mitogen.transport_config.PlayContextSpec.remote_user = _remote_user_or_local

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):
    pass
