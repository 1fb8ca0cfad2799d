"""ASGI entry point: granian's ASGI interface or gunicorn with uvicorn's worker, `asgi:application`
(the app role's `app_protocol: asgi`). The same views as `wsgi:application`; async views such
as /api/async/redis then run on the worker's event loop instead of a loop of their own."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pystack_django.settings")

application = get_asgi_application()
