"""WSGI entry point: gunicorn `wsgi:application`, uWSGI `module = wsgi:application`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pystack_django.settings")

application = get_wsgi_application()
