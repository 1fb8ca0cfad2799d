"""Run granian on the listening socket systemd holds, installed by the pystack app role.

granian binds its own sockets, one per worker (SO_REUSEPORT): a restart
refuses connections while no process listens, and a worker stopped by a
reload drops the connections queued on its own socket. It cannot take a
socket from systemd yet (granian issue #786). This starts granian's own
server with the socket systemd passes (LISTEN_FDS, from pystack-app.socket)
shared by every worker, the way gunicorn uses it: a restart queues
connections in the socket, and a reload (SIGHUP: a new worker, then the old
one finishes its requests, one at a time) loses none.

    python pystack_granian.py CONFIG.json           serve (under systemd)
    python pystack_granian.py --check CONFIG.json   check the configuration

CONFIG.json holds granian.server.Server's keyword arguments (interface,
workers, blocking_threads, ...) plus "target" and, for a run without systemd,
"address" and "port"; keys that start with "//" are comments. --check builds
the server from it without serving: unknown keys and values granian refuses
fail there, before the file replaces a working one.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sys
from pathlib import Path

SD_LISTEN_FDS_START = 3


def read(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    if not isinstance(config, dict) or not isinstance(config.get("target"), str):
        raise ValueError(f"{path}: a JSON object with a 'target' (module:callable) is needed")
    return config


def build(config: dict):
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.server import Server

    kwargs = {key: value for key, value in config.items() if not key.startswith("//")}
    target = kwargs.pop("target")
    kwargs["interface"] = Interfaces(kwargs.get("interface", "wsgi"))
    if "http" in kwargs:
        kwargs["http"] = HTTPModes(kwargs["http"])
    if "loop" in kwargs:
        kwargs["loop"] = Loops(kwargs["loop"])
    if "working_dir" in kwargs:
        kwargs["working_dir"] = Path(kwargs["working_dir"])
    return Server(target, **kwargs)


def systemd_socket() -> socket.socket | None:
    """The one listening socket systemd passed to this process, if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    count = int(os.environ.get("LISTEN_FDS", "0"))
    if count != 1:
        raise SystemExit(f"pystack_granian: granian serves one socket; systemd passed {count}")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    sock.set_inheritable(True)
    return sock


def use_socket(server, sock: socket.socket) -> None:
    """Make the server hand `sock` to its workers instead of binding its own."""
    from granian._granian import SocketHolder

    def _init_shared_socket():
        # granian's own (2.5 to 2.8): a shared socket, as it sets up for a
        # Unix socket; check_internals() looks for these before any start.
        server._ssp = None
        server._shd = SocketHolder(sock.fileno(), False, server.backlog)
        server._sfd = sock.fileno()
        server._sso = sock

    server._init_shared_socket = _init_shared_socket
    host, port = sock.getsockname()[:2]
    server.bind_addr, server.bind_port = host, port


def check_internals(server) -> None:
    """What use_socket() relies on in this granian, which may be newer than the role knows."""
    import inspect

    from granian._granian import SocketHolder

    missing = [
        name for name in ("_init_shared_socket", "_spawn_worker", "bind_addr", "bind_port") if not hasattr(server, name)
    ]
    if len(inspect.signature(type(server)._init_shared_socket).parameters) != 1:
        missing.append("_init_shared_socket(self)")
    probe = socket.socket()  # never bound: only the constructor's arguments are checked
    try:
        SocketHolder(probe.fileno(), False, 128)
    except TypeError:
        missing.append("SocketHolder(fd, uds, backlog)")
    finally:
        probe.close()
    if missing:
        raise SystemExit(f"pystack_granian: this granian lacks {', '.join(missing)}; pin a release from 2.5 to 2.8")


def follow_current(server, working_dir: str) -> None:
    """Workers fork from the main process and inherit its working directory, which
    granian puts first on their sys.path: enter `current` again before every reload, so
    new workers import the release it points to now (gunicorn's chdir does the same)."""
    os.chdir(working_dir)
    server.on_reload(lambda: os.chdir(working_dir))


def follow_environment(server, env_file: str) -> None:
    """Workers inherit the main process's environment: read the app's environment file
    again before every reload, so a changed value (a rotated secret) reaches them."""
    import pystack_env

    server.on_reload(lambda: pystack_env.apply(env_file))


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--check":
        config = read(argv[1])
        check_internals(build(config))
        print(f"{argv[1]}: granian accepts this configuration")
        return 0
    if len(argv) != 1:
        print("usage: pystack_granian.py [--check] CONFIG.json", file=sys.stderr)
        return 2
    config = read(argv[0])
    # Workers must inherit the socket: fork, not Python 3.14's forkserver.
    multiprocessing.set_start_method("fork", force=True)
    server = build(config)
    check_internals(server)
    if "working_dir" in config:
        follow_current(server, config["working_dir"])
    if os.environ.get("PYSTACK_ENV_FILE"):
        follow_environment(server, os.environ["PYSTACK_ENV_FILE"])
    sock = systemd_socket()
    if sock is not None:
        use_socket(server, sock)
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
