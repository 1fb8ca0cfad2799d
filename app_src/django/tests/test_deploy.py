"""The deploy's commands with production settings: migrate, collectstatic, check --deploy."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import DATABASE_URL, run_manage

# What the deploy renders into app.env (with a TLS-terminating balancer in front).
PRODUCTION_ENV = {
    "SECRET_KEY": "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_CACHE_URL": "redis://app:pw@cache1:6379/0",
    "REDIS_SESSION_URL": "redis://app:pw@cache1:6380/0",
    "ALLOWED_HOSTS": "www.example.net,10.0.0.11,127.0.0.1,localhost",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def test_check_deploy_is_clean() -> None:
    # No connection is made: the checks only read settings.
    result = run_manage(PRODUCTION_ENV, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (1 silenced)."


def test_check_deploy_names_what_is_missing() -> None:
    env = {**PRODUCTION_ENV, "SECRET_KEY": "short", "SESSION_COOKIE_SECURE": "false"}
    del env["SECURE_HSTS_SECONDS"]
    result = run_manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    for warning in ("security.W004", "security.W009", "security.W012"):
        assert warning in result.stderr


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    env = {**PRODUCTION_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}
    first = run_manage(env, "migrate", "--noinput")
    assert first.returncode == 0, first.stderr
    assert "Applying items.0001_initial... OK" in first.stdout
    second = run_manage(env, "migrate", "--noinput")
    assert "No migrations to apply." in second.stdout


def test_models_and_migrations_agree() -> None:
    result = run_manage(
        {**PRODUCTION_ENV, "DATABASE_URL": "sqlite://"}, "makemigrations", "--check", "--dry-run"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_collectstatic_writes_hashed_names_and_manifest(tmp_path: Path) -> None:
    env = {**PRODUCTION_ENV, "STATIC_ROOT": str(tmp_path / "static")}
    result = run_manage(env, "collectstatic", "--noinput")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    css, js = manifest["paths"]["css/site.css"], manifest["paths"]["js/site.js"]
    assert css.startswith("css/site.")
    assert css.endswith(".css")
    assert css != "css/site.css"
    assert js.startswith("js/site.")
    assert js.endswith(".js")
    assert (tmp_path / "static" / css).is_file()
    # A second run (every node, every deploy) copies nothing new.
    again = run_manage(env, "collectstatic", "--noinput")
    assert "0 static files copied" in again.stdout
