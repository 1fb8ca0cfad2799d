"""URL map: the same endpoints as the Flask app, plus /cached (a cache_page-cached page)."""

from __future__ import annotations

from django.conf import settings
from django.urls import path
from django.views.decorators.cache import cache_page

from items import async_views, views

urlpatterns = [
    path("", views.index, name="index"),
    path("runtime", views.runtime, name="runtime"),
    path("livez", views.livez, name="livez"),
    path("healthz", views.healthz, name="healthz"),
    path("api/items", views.items_collection, name="items"),
    path("api/seed", views.seed, name="seed"),
    path("api/session", views.session_visits, name="session"),
    path("api/tasks", views.enqueue_task, name="tasks"),
    path("api/tasks/<str:task_id>", views.task_status, name="task"),
    # An async view (asyncio.gather over redis.asyncio): it pays under ASGI (asgi.py).
    path("api/async/redis", async_views.redis_fanout, name="async-redis"),
    path("page", views.cpu_page, name="page"),
    # The whole response (headers and body) is cached in the "default" cache for CACHE_TTL
    # seconds: a hit skips the view. Compare with /page to see what a page cache buys.
    path("cached", cache_page(settings.CACHE_TTL)(views.cached_page), name="cached"),
]

# A database or session store that is down: a JSON 503 with Retry-After, not an HTML 500.
handler500 = "pystack_django.errors.server_error"
