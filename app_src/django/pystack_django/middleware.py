"""Server-Timing: app;dur=<ms> on every response, like the Flask app."""

from __future__ import annotations

import time
from typing import Callable

from django.http import HttpRequest, HttpResponse


class ServerTimingMiddleware:
    """First in MIDDLEWARE, so the time covers every other middleware and the view.

    Lets access logs, the balancer and benchmarks split app time from network time.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response
