"""WSGI entry point: gunicorn `wsgi:application`, uWSGI `module = wsgi:application`."""

from pystack_flask import create_app

application = create_app()
