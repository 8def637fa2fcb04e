"""Requests for synchronous views: Django's whole request cycle in ONE hop to a shared thread pool.

Under ASGI, Django's handler serves a synchronous view the costly way: each request gets a
thread of its own (a new thread-sensitive executor whose thread is started for the request and
joined afterwards by one more new thread), and the request hops into it and back five times —
the `request_started` signal, the CSRF middleware's `process_view`, the view, DRF's `render`,
`response.close()` — each a hand-over of the GIL between threads. See docs/performance.md for
what that cost the API's hot endpoints.

`SyncViewsInThreads` sits in front of Django's ASGI handler. A request whose view is synchronous
(every DRF view, the admin) has its body read on the event loop; then its whole request cycle
runs as Django runs it under WSGI — `request_started`, the middlewares in their synchronous form,
the view, rendering, `response.close()` (`request_finished`: the database connection goes back
to the pool) — in one call on a pool of long-lived threads, in a copy of the caller's context
variables (as `sync_to_async` would); the response is sent from the event loop. Requests for
async views (the event stream) go to Django's handler as before, and so does any request that
arrives while every pool thread is busy (a slow view — a password hash, a DNS lookup — never
holds up the others: the overflow gets a thread of its own, Django's way).

What it keeps: the middleware chain, its order and every middleware's behaviour (all of them
are sync-capable: the `/v1` error envelope, trace ids, metrics, tracing, idempotency). What
differs: once its sync part has started, a request runs to its end even if the client
disconnects — as under WSGI, and as the idempotency middleware already ensures for keyed POSTs
under Django's handler.

Whether a view is synchronous is read from the request's URL match, which is then passed on in
the scope: neither the pool's handler nor Django's resolves the URL again (arkloop/resolving.py).

It relies on methods of Django's handlers (`ASGIHandler.read_body`, `create_request`,
`send_response`; `BaseHandler.load_middleware`, `get_response`), which `check_django_handlers`
verifies when the process starts (Django is pinned in requirements.txt).
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO

from asgiref.sync import iscoroutinefunction
from django.core import signals
from django.core.exceptions import ImproperlyConfigured, RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import HttpResponse
from django.urls import set_script_prefix

from arkloop.resolving import ResolvedOnce, check_resolve_request, scope_match

# The handler methods used here, with the parameters they are called with.
_USED = {
    (ASGIHandler, "read_body"): ["self", "receive"],
    (ASGIHandler, "create_request"): ["self", "scope", "body_file"],
    (ASGIHandler, "send_response"): ["self", "response", "send"],
    (BaseHandler, "load_middleware"): ["self", "is_async"],
    (BaseHandler, "get_response"): ["self", "request"],
}


def check_django_handlers() -> None:
    """Fail loudly at startup when Django's handlers no longer have what this module calls."""
    for (cls, name), parameters in _USED.items():
        method = getattr(cls, name, None)
        if method is None or list(inspect.signature(method).parameters) != parameters:
            raise ImproperlyConfigured(
                f"arkloop.serving: {cls.__name__}.{name}{parameters} changed in this Django version; "
                "pin the Django of requirements.txt or set ARKLOOP_REQUEST_THREADS=0")


class _SyncHandler(ResolvedOnce, BaseHandler):
    """Django's request cycle with the middleware chain built in its synchronous form, resolving
    the URL only when the scope does not carry its match (arkloop/resolving.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.load_middleware(is_async=False)


class SyncViewsInThreads:
    """ASGI app: requests for sync views served in one hop to `threads` pooled threads; the rest
    (and the overflow when every pool thread is busy) by `django_app`, Django's ASGI handler."""

    def __init__(self, django_app: ASGIHandler, *, threads: int) -> None:
        check_django_handlers()
        check_resolve_request()
        self.django_app = django_app
        self.handler = _SyncHandler()
        self.threads = threads
        self.busy = 0  # requests in the pool (changed on the event loop only)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="arkloop-request")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and self.busy < self.threads:
            scope, match = scope_match(scope)  # passed on in the scope: whoever serves it resolves no more
            if match is None or not iscoroutinefunction(match.func):  # no view: Django's 404 is sync too
                await self._serve(scope, receive, send)
                return
        await self.django_app(scope, receive, send)

    async def _serve(self, scope: dict, receive: Callable, send: Callable) -> None:
        self.busy += 1
        try:
            try:
                body_file = await self.django_app.read_body(receive)
            except RequestAborted:
                return  # the client left before its request was complete
            loop = asyncio.get_running_loop()
            call = functools.partial(contextvars.copy_context().run, self._respond, scope, body_file)
            response = await loop.run_in_executor(self.executor, call)
        finally:
            self.busy -= 1
        await self.django_app.send_response(response, send)
        if response.streaming:  # a file the view streams (the static files of DEBUG)
            await asyncio.get_running_loop().run_in_executor(self.executor, response.close)

    def _respond(self, scope: dict, body_file: IO[bytes]) -> HttpResponse:
        """One request, in a pool thread: what Django's WSGI handler does for it."""
        try:
            set_script_prefix(get_script_prefix(scope))
            signals.request_started.send(sender=ASGIHandler, scope=scope)
            request, response = self.django_app.create_request(scope, body_file)
            if request is not None:
                response = self.handler.get_response(request)
            response._handler_class = ASGIHandler
            if not response.streaming:
                response.close()  # request_finished: the database connection goes back to the pool
            return response
        finally:
            body_file.close()
