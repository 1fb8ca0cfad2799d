from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask

from pystack_flask import create_app
from pystack_flask.staticfiles import MANIFEST_NAME, digest_static, file_hash, load_manifest, rewrite_css

APP_DIR = Path(__file__).resolve().parent.parent
HASHED = re.compile(r"^(css/site|js/site)\.[0-9a-f]{12}\.(css|js)$")


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def digest_app(static_root: Path) -> Flask:
    return create_app({"TESTING": True, "DATABASE_URL": "sqlite://", "STATIC_ROOT": str(static_root)})


def run_digest(static_root: Path) -> str:
    result = digest_app(static_root).test_cli_runner().invoke(args=["digest-static"])
    assert result.exit_code == 0, result.output
    return result.output


def test_digest_static_writes_hashed_names_and_a_django_manifest(tmp_path: Path) -> None:
    out = tmp_path / "staticfiles"
    assert run_digest(out).startswith("2 static files, 5 written to ")
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["version"] == "1.1"
    assert set(manifest["paths"]) == {"css/site.css", "js/site.js"}
    for name, hashed in manifest["paths"].items():
        assert HASHED.match(hashed), hashed
        content = (APP_DIR / "static" / name).read_bytes()
        assert hashed == name.replace(".", f".{file_hash(content)}.", 1)
        assert (out / hashed).read_bytes() == content
        assert (out / name).read_bytes() == content  # the original name too
    assert load_manifest(out) == manifest["paths"]
    assert load_manifest(tmp_path / "nothing") is None


def test_digest_static_is_idempotent_and_writes_only_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "staticfiles"
    run_digest(out)
    first = tree(out)
    assert run_digest(out).startswith("2 static files, 0 written")
    assert tree(out) == first  # same names, content and timestamps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["staticfiles"]
    assert not list(out.rglob(".*"))  # no temporary files left


def test_digest_static_rewrites_css_urls(tmp_path: Path) -> None:
    source = tmp_path / "static"
    (source / "css").mkdir(parents=True)
    (source / "img").mkdir()
    (source / "img" / "logo.png").write_bytes(b"png")
    (source / "css" / "a.css").write_text(
        'h1 { background: url("../img/logo.png?v=1"); }\n'
        "h2 { background: url(data:image/png;base64,AAAA) url(/abs.png) url(https://cdn/x.png); }\n"
        "h3 { background: url( '../img/missing.png' ); }\n"
    )
    paths, _ = digest_static(source, tmp_path / "out")
    logo = paths["img/logo.png"]
    css = (tmp_path / "out" / paths["css/a.css"]).read_text()
    assert f'url("../{logo}?v=1")' in css
    assert "url(data:image/png;base64,AAAA) url(/abs.png) url(https://cdn/x.png)" in css
    assert "url( '../img/missing.png' )" in css
    # The stylesheet's hash covers the rewritten references.
    assert paths["css/a.css"] == f"css/a.{file_hash(css.encode())}.css"
    assert rewrite_css("site.css", "a { b: url(x.png) }", {"x.png": "x.1.png"}) == "a { b: url(x.1.png) }"


def test_app_links_and_serves_hashed_names_after_digest(tmp_path: Path) -> None:
    out = tmp_path / "staticfiles"
    run_digest(out)
    paths = load_manifest(out)
    assert paths is not None
    client = digest_app(out).test_client()
    html = client.get("/").get_data(as_text=True)
    assert f'href="/static/{paths["css/site.css"]}"' in html
    assert f'src="/static/{paths["js/site.js"]}"' in html
    for hashed in paths.values():
        response = client.get(f"/static/{hashed}")
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        response.close()
    plain = client.get("/static/css/site.css")
    assert plain.status_code == 200
    assert "immutable" not in plain.headers.get("Cache-Control", "")
    plain.close()


@pytest.mark.parametrize("content", ["[]", '{"paths": 3}'])
def test_a_broken_manifest_stops_the_app(tmp_path: Path, content: str) -> None:
    (tmp_path / MANIFEST_NAME).write_text(content)
    with pytest.raises(ValueError, match="is not a static files manifest"):
        digest_app(tmp_path)
