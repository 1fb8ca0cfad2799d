"""Server-Timing: app;dur=<ms> on every response, like the Flask app."""

from __future__ import annotations

import time
from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse


class ServerTimingMiddleware:
    """First in MIDDLEWARE, so the time covers every other middleware and the view.

    Lets access logs, the balancer and benchmarks split app time from network time. Sync and
    async capable: under ASGI (asgi.py) the request stays on the event loop instead of being
    handed to a thread for this middleware.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        return self._stamp(response, started)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = await self.get_response(request)
        return self._stamp(response, started)

    @staticmethod
    def _stamp(response: HttpResponse, started: float) -> HttpResponse:
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response
