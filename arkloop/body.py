"""Request bodies (SPEC §1): never more than ARKLOOP_MAX_BODY_BYTES, however they arrive.

`BodyLimit` is the ASGI layer every HTTP request passes first. It reads the body message by
message as the server delivers it, stops at the limit with 413 `validation.body_too_large`, and
hands the application the body it read *with its length*: a chunked body has no Content-Length,
and DRF reads no body from a request without one, so without this a chunked `{"title": …}`
created a thread with an empty title.

The server can hold a body before any application sees it (Daphne's Twisted reads the whole
body first): `arkloop.daphne_body_limit` stops Daphne itself at the same limit, answering with
the same response (`too_large_response`).
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from django.conf import settings

from arkloop.errors import BodyTooLarge, envelope
from arkloop.tracing import request_trace_id, set_trace_id

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
App = Callable[[dict, Receive, Send], Awaitable[None]]


def max_body_bytes() -> int:
    return settings.ARKLOOP_MAX_BODY_BYTES


def too_large_response(traceparent: str | None = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of the 413 (it ends the connection: the rest of the body is unread).

    Its trace id is the request's `traceparent` one when valid, as for every other answer.
    """
    trace_id = request_trace_id(traceparent)
    set_trace_id(trace_id)
    error = BodyTooLarge(details={"max_bytes": max_body_bytes()})
    body = json.dumps(envelope(error.code, error.message, error.details)).encode()
    headers = [(b"Content-Type", b"application/json"), (b"Content-Length", str(len(body)).encode()),
               (b"X-Trace-Id", trace_id.encode()), (b"X-Content-Type-Options", b"nosniff"),
               (b"Connection", b"close")]
    return error.status, headers, body


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; _TooLarge as soon as it passes `limit` bytes (nothing more is read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _with_length(scope: dict, length: int) -> dict:
    """The scope with a Content-Length header for the body read (replacing Transfer-Encoding)."""
    headers = [(name, value) for name, value in scope.get("headers", [])
               if name.lower() not in (b"content-length", b"transfer-encoding")]
    return {**scope, "headers": [*headers, (b"content-length", str(length).encode())]}


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that delivers the body read once, then whatever the server sends next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> dict:
        return pending.pop() if pending else await receive()

    return replayed


class BodyLimit:
    """ASGI middleware: the request body read up to ARKLOOP_MAX_BODY_BYTES, else 413 (see module doc)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(receive, max_body_bytes())
        except _Disconnected:
            return  # the client left before its request was complete: nothing to answer
        except _TooLarge:
            status, headers, content = too_large_response(_header(scope, b"traceparent"))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content})
            return
        if body and not _has_length(scope):
            scope = _with_length(scope, len(body))
        await self.app(scope, _replay(body, receive), send)


def _has_length(scope: dict) -> bool:
    return _header(scope, b"content-length") is not None


def _header(scope: dict, name: bytes) -> str | None:
    return next((value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == name), None)
