"""Per-application objects, kept in app.extensions["pystack"] and reached through state()."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from .cache import Cache
from .config import Settings
from .taskqueue import PystackCelery


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    cache: Cache
    celery: PystackCelery


def state() -> AppState:
    return current_app.extensions["pystack"]  # type: ignore[no-any-return]
