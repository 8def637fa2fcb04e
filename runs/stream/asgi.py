"""The lean serving path of `GET /v1/runs/{run_id}/events`, in front of Django's ASGI handler.

Django's handler costs a stream more than its events do. Per request it makes a thread (the
request's thread-sensitive executor, used by every Django middleware's hop), which lives as long
as the stream; it closes the response through that thread; and every chunk passes its
StreamingHttpResponse wrappers. With 1,000 open streams that was 1,000 idle threads, and a burst
of terminal events queued 1,000 thread hops (see docs/performance.md).

This path serves only what succeeds: it runs the view's own checks (`open_run_events`) on a
request Django builds from the scope, and when they pass it writes the response itself — the
view's headers, the trace id, the headers Django's security middlewares would add — then the
body chunks straight to the server's `send`, on the event loop, with no thread. Anything else
(another URL, another method, a disallowed Host, any error) goes to Django's handler untouched,
which runs the view again and renders the error envelope exactly as for any other endpoint.
What Django's middlewares would do for a stream is done here too: the trace id (a valid
`traceparent` sets it), the request metrics, and with tracing on the request's span.
"""
from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import ResolverMatch

from arkloop import metrics, otel
from arkloop.resolving import scope_match
from arkloop.tracing import request_trace_id, set_trace_id
from runs.stream.limits import SlotHeldStream
from runs.stream.transport import chunk_writer
from runs.stream.views import open_run_events, run_events, sse_response

App = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

# Response-only middlewares whose headers every response carries (no I/O in process_response).
STREAM_ROUTE = "/v1/runs/{run_id}/events"
_HEADER_MIDDLEWARES = [SecurityMiddleware(lambda request: None), XFrameOptionsMiddleware(lambda request: None)]


class EventStreamFastPath:
    """ASGI app: streams served directly, everything else handed to `django_app`."""

    def __init__(self, django_app: App) -> None:
        self.django_app = django_app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        started = time.perf_counter()
        if scope["type"] != "http":
            await self.django_app(scope, receive, send)
            return
        scope, match = scope_match(scope)  # passed on in the scope: the apps behind resolve no more
        run_id = _stream_run_id(scope, match)
        opened = await _open(scope, run_id) if run_id is not None else None
        if opened is None:
            await self.django_app(scope, receive, send)
            return
        request, body = opened
        # Counted like any request (Django's middlewares are bypassed): answered when it starts.
        metrics.request_observe(method="GET", route=STREAM_ROUTE, status=200, seconds=time.perf_counter() - started)
        if otel.ENABLED:
            with _stream_span(request):
                await _serve(request, body, receive, send)
        else:
            await _serve(request, body, receive, send)


@contextmanager
def _stream_span(request: HttpRequest) -> Iterator[None]:
    """The request span Django's instrumentation would have made, in the request's trace."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract({"traceparent": request.headers.get("traceparent", "")})
    with otel.forced_trace_id(request.trace_id):
        span = otel.tracer().start_span(f"GET {STREAM_ROUTE}", context=parent, kind=trace.SpanKind.SERVER,
                                        attributes={"http.request.method": "GET", "http.route": STREAM_ROUTE,
                                                    "http.response.status_code": 200})
    with trace.use_span(span, end_on_exit=True):
        yield


def _stream_run_id(scope: dict, match: ResolverMatch | None) -> str | None:
    """The run id when this is a GET of the event stream URL (Django's URL map decides)."""
    if scope["method"] != "GET" or match is None or match.func is not run_events:
        return None
    return match.kwargs.get("run_id")


async def _open(scope: dict, run_id: str) -> tuple[HttpRequest, SlotHeldStream] | None:
    """The request and the stream's body when every check passes; None to let Django answer."""
    request = ASGIRequest(scope, io.BytesIO())
    try:
        request.get_host()  # ALLOWED_HOSTS, as Django's CommonMiddleware checks it
        request.trace_id = request_trace_id(request.headers.get("traceparent"))
        set_trace_id(request.trace_id)
        return request, await open_run_events(request, run_id)
    except Exception:
        return None


def _start_message(request: HttpRequest, body: AsyncIterator[bytes]) -> dict[str, Any]:
    response = sse_response(body)
    response["X-Trace-Id"] = request.trace_id
    for middleware in _HEADER_MIDDLEWARES:
        middleware.process_response(request, response)
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    return {"type": "http.response.start", "status": response.status_code, "headers": headers}


async def _serve(request: HttpRequest, body: SlotHeldStream, receive: Callable, send: Callable) -> None:
    """Send the stream until it ends or the client hangs up, whichever comes first."""
    try:
        await send(_start_message(request, body))
        # Daphne writes the response head with the first body message: send it now, not with the
        # first event (which, for a cursor at the end of an active run, may be a heartbeat away).
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        body.direct.writer = chunk_writer(send)  # under Daphne, the hub writes live frames itself
        streaming = asyncio.create_task(_send_body(body, send))
        hang_up = asyncio.create_task(_wait_for_disconnect(receive))
        try:
            await asyncio.wait({streaming, hang_up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            streaming.cancel()
            hang_up.cancel()
            await asyncio.wait({streaming, hang_up})
    finally:
        await body.aclose()  # also when the body never started: it gives back its stream slot
    if not streaming.cancelled() and streaming.exception() is not None:
        raise streaming.exception()


async def _send_body(body: AsyncIterator[bytes], send: Callable) -> None:
    try:
        async for chunk in body:
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await body.aclose()  # the stream's `finally:` (unsubscribe) runs now, not at garbage collection


async def _wait_for_disconnect(receive: Callable) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the (empty) request body of the GET
