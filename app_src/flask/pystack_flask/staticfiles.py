"""Content-hashed static files, as Django's ManifestStaticFilesStorage makes them.

`flask --app wsgi digest-static` (the deploy's prepare step, run in the release directory)
copies static/ into staticfiles/: each file under its own name and under a name carrying the
first 12 hex digits of the MD5 of its content (css/site.css -> css/site.<hash>.css), plus
staticfiles/staticfiles.json in Django's manifest format:

    {"paths": {"css/site.css": "css/site.0123456789ab.css", ...}, "version": "1.1"}

Relative url(...) references inside CSS files are rewritten to the hashed names first, so a
stylesheet's hash changes with the files it points to. The command writes only inside
staticfiles/ (the rest of the release is read-only) and is idempotent: a file whose content is
already there is left alone, so a second run gives the same tree, timestamps included.

The app reads the manifest once at start-up when it exists: url_for('static', filename=...) then
gives the hashed name, /static/ is served from staticfiles/ (for requests that reach the node
directly; the edge serves staticfiles/ itself), with `Cache-Control: public, max-age=31536000,
immutable` on hashed names. Without a manifest (unit tests, a checkout) the plain names are
linked and served from static/.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

MANIFEST_NAME = "staticfiles.json"
MANIFEST_VERSION = "1.1"
HASH_LENGTH = 12
IMMUTABLE = "public, max-age=31536000, immutable"
# url(...) in CSS; group 2 is the reference without its quotes.
CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")\s]+)\1\s*\)""")


def file_hash(content: bytes) -> str:
    # MD5 as Django's HashedFilesMixin uses it: a content fingerprint, not a security measure.
    return hashlib.md5(content, usedforsecurity=False).hexdigest()[:HASH_LENGTH]


def hashed_name(name: str, content: bytes) -> str:
    """css/site.css -> css/site.<12 hex>.css (a name without a suffix gets the hash appended)."""
    root, ext = posixpath.splitext(name)
    return f"{root}.{file_hash(content)}{ext}"


def _sources(source: Path) -> Iterator[str]:
    """Relative posix names of the files under `source`, CSS last (it may point at the others)."""
    names = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    return iter(sorted(names, key=lambda name: name.endswith(".css")))


def rewrite_css(name: str, css: str, paths: dict[str, str]) -> str:
    """Point relative url(...) references of stylesheet `name` at the hashed names in `paths`.

    Absolute URLs, data: URIs and fragments are left alone, and so are references to files not
    (yet) in `paths`; a query string or fragment after the file name is kept.
    """
    directory = posixpath.dirname(name)

    def replace(match: re.Match[str]) -> str:
        quote, reference = match.group(1), match.group(2)
        if reference.startswith(("/", "#", "data:")) or "://" in reference:
            return match.group(0)
        path, sep, rest = _split(reference)
        target = posixpath.normpath(posixpath.join(directory, path))
        if target not in paths:
            return match.group(0)
        relative = posixpath.relpath(paths[target], directory or ".")
        return f"url({quote}{relative}{sep}{rest}{quote})"

    return CSS_URL.sub(replace, css)


def _split(reference: str) -> tuple[str, str, str]:
    for index, char in enumerate(reference):
        if char in "?#":
            return reference[:index], char, reference[index + 1 :]
    return reference, "", ""


def _write(target: Path, content: bytes) -> bool:
    """Write `content` to `target` unless it holds that already; True when written.

    Through a temporary file in the same directory and a rename: a server reading the file at
    that moment sees the old or the new content, never half of it.
    """
    if target.is_file() and target.read_bytes() == content:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


def digest_static(source: Path, output: Path) -> tuple[dict[str, str], int]:
    """Copy `source` into `output` with hashed names and the manifest.

    Returns (manifest paths, number of files written). Writes nothing outside `output`.
    """
    paths: dict[str, str] = {}
    written = 0
    for name in _sources(source):
        content = (source / name).read_bytes()
        if name.endswith(".css"):
            content = rewrite_css(name, content.decode("utf-8"), paths).encode("utf-8")
        paths[name] = hashed_name(name, content)
        written += _write(output / name, content)
        written += _write(output / paths[name], content)
    manifest = json.dumps({"paths": paths, "version": MANIFEST_VERSION}, indent=1, sort_keys=True)
    written += _write(output / MANIFEST_NAME, (manifest + "\n").encode())
    return paths, written


def load_manifest(output: Path) -> dict[str, str] | None:
    """The manifest's paths, or None when `output` has none (digest-static never ran)."""
    try:
        data = json.loads((output / MANIFEST_NAME).read_text())
    except FileNotFoundError:
        return None
    paths = data.get("paths") if isinstance(data, dict) else None
    if not isinstance(paths, dict):
        raise ValueError(f"{output / MANIFEST_NAME} is not a static files manifest")
    return {str(key): str(value) for key, value in paths.items()}
