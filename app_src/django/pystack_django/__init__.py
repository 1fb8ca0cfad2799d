"""pystack reference Django project: settings from environment variables, see settings.py.

The Celery app is loaded with Django, so that tasks use it (`celery -A pystack_django worker`).
"""

from .celery import app as celery_app

__all__ = ["celery_app"]
