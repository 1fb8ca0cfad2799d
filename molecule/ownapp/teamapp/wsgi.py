"""WSGI entry point: ``wsgi:app``."""

from teamapp import create_app

app = create_app()
