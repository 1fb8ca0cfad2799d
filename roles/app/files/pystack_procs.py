"""What a systemd service runs, read from /proc (the pystack app role's deploy check).

    python3 pystack_procs.py UNIT

run as the service's user (reading another user's /proc/PID/cwd needs
CAP_SYS_PTRACE, which root in a container lacks), prints JSON: the unit's
ActiveState, NRestarts and MainPID, and for the main process and its
children: pid, executable, working directory and argv.
"""

import json
import os
import subprocess
import sys


def show(unit):
    out = subprocess.run(
        ["systemctl", "show", unit, "-p", "ActiveState", "-p", "NRestarts", "-p", "MainPID"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def describe(pid):
    def link(name):
        try:
            return os.path.realpath(os.readlink(f"/proc/{pid}/{name}"))
        except OSError:  # gone, or not ours to look at (run it as the service's user)
            return ""

    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        argv = []
    return {"pid": pid, "exe": link("exe"), "cwd": link("cwd"), "argv": argv}


def main(unit):
    state = show(unit)
    main_pid = int(state.get("MainPID", "0") or 0)
    pids = [main_pid, *children(main_pid)] if main_pid else []
    print(
        json.dumps(
            {
                "active": state.get("ActiveState", ""),
                "restarts": int(state.get("NRestarts", "0") or 0),
                "main_pid": main_pid,
                "processes": [describe(p) for p in pids],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
