"""The deploy's commands with production settings: migrate, collectstatic, check --deploy."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import run_manage

# What the deploy sends (the app role's generic contract): no security settings, the app's
# defaults are the production ones (TLS-terminating balancer in front).
PRODUCTION_ENV = {
    "SECRET_KEY": "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz",
    "DJANGO_SECRET_KEY": "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz",
    "DATABASE_URL": "postgresql://app:pw@db1:6432/app",
    "REDIS_URL": "redis://app:pw@cache1:6379",
    "REDIS_DURABLE_URL": "redis://app:pw@cache1:6380",
    "CELERY_BROKER_URL": "redis://app:pw@cache1:6380",
    "CELERY_RESULT_BACKEND": "redis://app:pw@cache1:6380",
    "DJANGO_ALLOWED_HOSTS": "www.example.net,app1,10.0.0.11,127.0.0.1,localhost",
    "DB_PREPARE_THRESHOLD": "5",
    "APP_SERVER": "gunicorn",
    "APP_INTERPRETER": "cpython",
}


def test_check_deploy_is_clean() -> None:
    # No connection is made: the checks only read settings.
    result = run_manage(PRODUCTION_ENV, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (1 silenced)."


def test_check_deploy_names_what_is_missing() -> None:
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": "short", "SESSION_COOKIE_SECURE": "false"}
    env["SECURE_HSTS_SECONDS"] = "0"
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
