"""pystack reference Flask application: create_app() builds it from environment variables."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import click
from flask import Flask, Response, g, request

from .cache import Cache, redis_from_url
from .config import APP_ROOT, ConfigError, Settings, load_settings
from .db import create_schema, make_engine, make_sessionmaker
from .errors import register as register_error_handlers
from .sessions import RedisSessionInterface
from .state import AppState
from .staticfiles import IMMUTABLE, digest_static, load_manifest
from .taskqueue import make_celery
from .views import bp

__all__ = ["ConfigError", "Settings", "create_app", "create_schema"]


def _log_to_stderr() -> None:
    """Send this package's warnings (cache or session Redis down) to stderr, i.e. the journal
    under systemd, in gunicorn's format, unless logging was configured already."""
    logger = logging.getLogger("pystack_flask")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` overrides environment variables of the same name (tests).

    Raises ConfigError (with a message naming the variable) when the environment is incomplete.
    """
    settings = load_settings(overrides=config)
    _log_to_stderr()
    # After `flask digest-static` (the deploy's prepare step) /static/ serves staticfiles/ and
    # url_for('static', ...) links the hashed names; before it, static/ under the plain names.
    manifest = load_manifest(settings.static_root)
    static_folder = settings.static_root if manifest is not None else APP_ROOT / "static"
    app = Flask(
        __name__, template_folder="../templates", static_folder=str(static_folder), static_url_path="/static"
    )
    app.config.update(SECRET_KEY=settings.secret_key, TESTING=settings.testing)
    if manifest is not None:
        _use_manifest(app, manifest)

    engine = make_engine(settings)
    cache_client = settings.redis_cache_client
    if cache_client is None and settings.redis_cache_url:
        cache_client = redis_from_url(settings.redis_cache_url)
    session_client = settings.redis_session_client
    if session_client is None and settings.redis_session_url:
        session_client = redis_from_url(settings.redis_session_url)
    if session_client is not None:
        app.session_interface = RedisSessionInterface(session_client)

    app.extensions["pystack"] = AppState(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        cache=Cache(cache_client),
        # Enqueues tasks and reads their results; connects on first use (after the fork).
        celery=make_celery(settings, engine=engine),
    )
    app.register_blueprint(bp)
    register_error_handlers(app)

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _server_timing(response: Response) -> Response:
        # Lets access logs, the balancer and benchmarks split app time from network time.
        started = g.get("request_started")
        if started is not None:
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    @app.cli.command("init-db")
    def init_db() -> None:
        """Create missing tables (idempotent; run once per deploy, on one host)."""
        tables = create_schema(engine)
        click.echo(f"schema ready: {', '.join(tables)}")

    @app.cli.command("digest-static")
    def digest_static_command() -> None:
        """Copy static/ into staticfiles/ with content-hashed names and staticfiles.json (idempotent)."""
        paths, written = digest_static(APP_ROOT / "static", settings.static_root)
        click.echo(f"{len(paths)} static files, {written} written to {settings.static_root}")

    return app


def _use_manifest(app: Flask, manifest: dict[str, str]) -> None:
    """Link hashed names and mark them immutable (their content never changes under that name)."""
    hashed = frozenset(manifest.values())

    @app.url_defaults
    def _hashed_static_name(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "filename" in values:
            values["filename"] = manifest.get(values["filename"], values["filename"])

    @app.after_request
    def _immutable_static(response: Response) -> Response:
        if request.endpoint == "static" and (request.view_args or {}).get("filename") in hashed:
            response.headers["Cache-Control"] = IMMUTABLE
        return response
