"""What a requirements file of the app asks for (run on the controller by the pystack app role).

    python3 pystack_requirements.py SOURCE_DIR FILE

prints JSON: the file's text, a digest of it and of every file it includes
(-r, -c, and their own includes, relative to the including file), whether it
installs a local path (`.`, `-e .`, `./pkg`, `file:`: the app's own code goes
into the virtualenv, so the virtualenv is the release's own), whether it
carries hashes, and which included files are missing. Exit 0 even then: the
role decides what to say.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+)(\S+)", re.MULTILINE)
LOCAL = re.compile(
    r"^\s*(?:(?:-e|--editable)(?:\s*=\s*|\s+))?(?:\.{1,2}(?:/\S*)?|/\S+|file:\S+)(?:\s|$|\[)", re.MULTILINE
)


def joined(text: str) -> str:
    """The file with backslash continuations joined, as pip reads it."""
    return re.sub(r"\\\r?\n", " ", text)


def main(source: str, name: str) -> dict:
    root = Path(source).resolve()
    digest = hashlib.sha256()
    seen: list[str] = []
    missing: list[str] = []
    local = hashed = False
    queue = [root / name]
    first_text = ""
    while queue:
        path = queue.pop(0).resolve()
        shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        if shown in seen:
            continue
        seen.append(shown)
        try:
            text = path.read_text()
        except OSError:
            missing.append(shown)
            continue
        if not first_text:
            first_text = text
        digest.update(shown.encode() + b"\0" + text.encode() + b"\0")
        flat = joined(text)
        local = local or bool(LOCAL.search(flat))
        hashed = hashed or "--hash" in flat
        queue += [path.parent / include for include in INCLUDE.findall(flat) if "://" not in include]
    return {
        "text": first_text,
        "digest": digest.hexdigest(),
        "local": local,
        "hashed": hashed,
        "files": seen,
        "missing": missing,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
