"""An async view: where ASGI pays. GET /api/async/redis?keys=N makes N Redis round trips to the
cache instance at once (asyncio.gather over redis.asyncio), so the request waits about one
round trip instead of N. Under WSGI Django runs it too, on an event loop of its own per request;
under ASGI (app_protocol: asgi) it runs on the worker's loop, and a worker keeps serving other
requests while it waits."""

from __future__ import annotations

import asyncio
import time
import weakref

import redis
import redis.asyncio
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

KEYS_DEFAULT = 10
KEYS_MAX = 100
# One client (and connection pool) per event loop: a redis.asyncio client belongs to the loop
# that opened its connections.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
    weakref.WeakKeyDictionary()
)


def _client() -> redis.asyncio.Redis:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = redis.asyncio.from_url(
            settings.REDIS_CACHE_URL, socket_connect_timeout=2.0, socket_timeout=2.0
        )
        _clients[loop] = client
    return client


def _keys(request: HttpRequest) -> int:
    try:
        return max(1, min(int(request.GET.get("keys", KEYS_DEFAULT)), KEYS_MAX))
    except ValueError:
        return KEYS_DEFAULT


async def redis_fanout(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return JsonResponse({"error": "GET only"}, status=405)
    protocol = "asgi" if hasattr(request, "scope") else "wsgi"
    if not settings.REDIS_CACHE_URL:
        return JsonResponse({"error": "no cache configured (REDIS_URL)"}, status=503)
    count = _keys(request)
    client = _client()
    started = time.perf_counter()
    try:
        values = await asyncio.gather(*(client.incr(f"pystack:async:{i}") for i in range(count)))
    except (redis.RedisError, OSError) as exc:
        response = JsonResponse({"error": f"cache unavailable: {type(exc).__name__}"}, status=503)
        response["Retry-After"] = "5"
        return response
    finally:
        if protocol == "wsgi":
            # Under WSGI the loop ends with the request: close its connections with it.
            _clients.pop(asyncio.get_running_loop(), None)
            await client.aclose()
    response = JsonResponse(
        {
            "protocol": protocol,
            "keys": count,
            "round_trips_ms": round((time.perf_counter() - started) * 1000, 2),
            "total": sum(int(v) for v in values),
        }
    )
    response["Cache-Control"] = "no-store"
    return response
