"""Notes service (a team's own app): a small Flask + PostgreSQL + Redis + RQ app."""

import os

from flask import Flask

from .models import db, migrate


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY", "dev-only-not-secret")
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
        "DATABASE_URL", "postgresql://notes@localhost/notes"
    )
    # pgbouncer (transaction pooling) sits in front of PostgreSQL: check
    # connections before use and keep no session state between transactions.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True}
    app.config["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://localhost:6379")
    app.config["RQ_REDIS_URL"] = os.environ.get(
        "RQ_REDIS_URL", os.environ.get("REDIS_DURABLE_URL", app.config["REDIS_URL"])
    )

    db.init_app(app)
    migrations = os.path.join(os.path.dirname(app.root_path), "migrations")
    migrate.init_app(app, db, directory=migrations)

    from .views import bp

    app.register_blueprint(bp)
    return app
