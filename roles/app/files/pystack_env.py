r"""The app's environment file, read again by the app server at every reload.

Installed by the pystack app role beside pystack_serve. systemd hands the
environment file (KEY="value", with \\ \" \$ \` escaped) to the server when it
starts; gunicorn's configuration and the granian launcher read it again when
they reload, so a changed value (a rotated secret) reaches the new workers
without a restart.
"""

from __future__ import annotations

import os
import re

_LINE = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)="(.*)"$')
_ESCAPE = re.compile(r"\\(.)")


def read(path: str) -> dict[str, str]:
    """The variables of an environment file the app role wrote."""
    values: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            match = _LINE.match(line.rstrip("\n"))
            if match:
                values[match[1]] = _ESCAPE.sub(r"\1", match[2])
    return values


def apply(path: str) -> dict[str, str]:
    """Put the file's variables into this process's environment (for the workers it starts next)."""
    values = read(path)
    os.environ.update(values)
    return values
