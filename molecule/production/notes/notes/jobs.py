"""Background jobs, run by ``rq worker`` from the project root."""

import socket

from .models import Note, NoteStat, db

_app = None


def _get_app():
    global _app
    if _app is None:
        from . import create_app

        _app = create_app()
    return _app


def compute_note_stats(note_id):
    with _get_app().app_context():
        note = db.session.get(Note, note_id)
        if note is None:
            return None
        stat = NoteStat(note_id=note.id, length=len(note.body), processed_by=socket.gethostname())
        db.session.add(stat)
        db.session.commit()
        return {"note_id": note.id, "length": stat.length, "processed_by": stat.processed_by}
