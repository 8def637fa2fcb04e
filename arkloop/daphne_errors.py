"""Under Daphne, the requests the server refuses before the application sees them get the JSON
error envelope too, not an HTML page or a bare status line.

Daphne answers some requests itself, with an HTML page (`WebRequest.basic_error`): a header value
holding one of the bytes it refuses (\\x0b, \\x0c, \\x1c-\\x1e, \\x85) (400); an application
crash (500) or timeout (503). Twisted, below it, answers a request it cannot parse with a bare
`400 Bad Request` and no body (`HTTPChannel._respondToBadRequestAndDisconnect`): a NUL in a
header, a header name that is no token, a raw non-ASCII byte in the path or query, more than 500
headers or 16 KiB of them. (A multipart body Twisted could not parse was another; Twisted no
longer parses form bodies under Daphne: arkloop/daphne_body_limit.py.)

The other refusals become the envelope: 400 `http.bad_request` (Daphne's reason as the message), 5xx
`internal.error`, each with an `X-Trace-Id` (the request's valid `traceparent` one, else new).
The code patched or relied on is checked at startup (arkloop/patching.py); Daphne and Twisted are
pinned in requirements.txt.
"""
from __future__ import annotations

import json
from types import ModuleType

from arkloop import patching
from arkloop.errors import envelope
from arkloop.tracing import request_trace_id

# sha256 of the source of the Daphne 4.2.3 / Twisted 26.10.0 code this patch replaces or relies on.
_EXPECTED_SOURCES = {
    "WebRequest.basic_error": "a30bd3065c84ceb61311ea507d88235edc46c1bf316e03e2af9f6d992c4d0cc9",
    "HTTPChannel._respondToBadRequestAndDisconnect": "c7ccc0f4450a7d6b1fc41cf79bc17092c2331c2ef812b94403e805258ba7ff48",
}


def error_reply(status: int, reason: str, traceparent: bytes | None = None) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of the envelope for a refusal the server makes before the application runs."""
    trace_id = request_trace_id(traceparent.decode("latin-1") if traceparent else None)
    code, message = ("internal.error", "internal error") if status >= 500 else ("http.bad_request", reason)
    # Not set_trace_id: this runs in the reactor's context, which outlives the request.
    body = json.dumps({**envelope(code, message), "trace_id": trace_id}).encode()
    headers = [(b"Content-Type", b"application/json"), (b"Content-Length", str(len(body)).encode()),
               (b"X-Trace-Id", trace_id.encode()), (b"X-Content-Type-Options", b"nosniff")]
    return headers, body


def _check(web_request, http) -> None:
    owners = {"WebRequest": web_request, "HTTPChannel": http.HTTPChannel}
    patching.refuse("arkloop.daphne_errors", "the error answers of Daphne and Twisted",
                    patching.changed(_EXPECTED_SOURCES, owners))


def envelope_daphne_errors() -> None:
    """Patch Daphne's request class and Twisted's channel once; a no-op when Daphne is not installed."""
    patching.patch_daphne_once("arkloop.daphne_errors", _patch)


def _patch(WebRequest: type, http: ModuleType) -> None:
    _check(WebRequest, http)

    def basic_error(self, status: int, status_text: bytes, body: str) -> None:
        traceparent = (self.requestHeaders.getRawHeaders(b"traceparent") or [None])[0]
        headers, content = error_reply(status, body, traceparent)
        self.handle_reply({"type": "http.response.start", "status": status, "headers": headers})
        self.handle_reply({"type": "http.response.body", "body": content})

    def respond_to_bad_request(self) -> None:
        headers, content = error_reply(400, "the request could not be parsed as HTTP/1.1")
        lines = [b"HTTP/1.1 400 Bad Request", *(name + b": " + value for name, value in headers), b"Connection: close"]
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + content)
        self.loseConnection()

    WebRequest.basic_error = patching.mark(basic_error, WebRequest.basic_error)
    http.HTTPChannel._respondToBadRequestAndDisconnect = patching.mark(
        respond_to_bad_request, http.HTTPChannel._respondToBadRequestAndDisconnect)
