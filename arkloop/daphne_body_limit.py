"""Under Daphne, stop reading a request body at ARKLOOP_MAX_BODY_BYTES and answer 413 at once.

Twisted's HTTP channel, under Daphne, reads a request's whole body (into memory, or a temporary
file past 100 kB) before Daphne hands the request to the application, and Daphne then queues all
of it for the application in one go. One unauthenticated 300 MiB POST raised Daphne's memory by
~300 MB before the application could answer 413; neither Twisted nor Daphne has a body limit.

Twisted tells the request about its body through two methods: `gotLength(length)` once the
headers are in (None when chunked), then `handleContentChunk(data)` for each piece of the
decoded body. This patch counts there. Past the limit — the declared Content-Length, or the
bytes of a chunked body so far — the request is rejected: no `100 Continue` is sent, nothing
more is kept, the 413 of `arkloop.body.too_large_response` is written and the server's side of
the connection is closed. For up to LINGER_SECONDS the connection then reads and *discards*
what the client is still sending (as nginx's lingering close does), so a client that sends its
whole body before reading (most libraries) receives the 413 rather than a reset; then it is cut.

The same hook also switches off Twisted's parsing of form bodies (`multipart/form-data`,
`application/x-www-form-urlencoded`) into `request.args`, with Twisted's own flag
(`parsePOSTFormSubmission`, read by `requestReceived`): Daphne hands the application the raw body
and never reads `args`, so the parse was work done twice, and a multipart body Twisted could not
parse was answered with its bare `400` before the application saw it (the API answers such a body
415, as any body that is not JSON).

The methods used are checked at startup (`_check_twisted`, arkloop/patching.py): if a Twisted or
Daphne upgrade changes them, the process refuses to start instead of silently losing the limit.
Both are pinned in requirements.txt for this reason.
"""
from __future__ import annotations

import logging
from types import ModuleType

from arkloop import patching
from arkloop.body import max_body_bytes, too_large_response

log = logging.getLogger("arkloop.request")

LINGER_SECONDS = 5.0
# sha256 of the source of the Twisted methods whose behaviour this patch relies on (Twisted 26.10.0).
_EXPECTED_SOURCES = {
    "Request.gotLength": "1c389b99da50b0ae01068e39c543b5cfca3d227c96313bd6588d0850e61ef49f",
    "Request.handleContentChunk": "6e942756afb787b481118f00463abd0b27aee4af61474df2b4a7ec627902c470",
    "Request.requestReceived": "99ca6c5e24305de4a0cf1270a1cf624046cded1ceb23fb1c62bd743074f61d3f",
    "HTTPChannel.allHeadersReceived": "979a9a8410f41ad93bf8490700f9893dcf43bf8fb91af01b6bd5770910c28ebe",
}


def _check_twisted(http, web_request) -> None:
    """Refuse to start when the Twisted or Daphne code this patch hooks into is not what it expects."""
    changed = patching.changed(_EXPECTED_SOURCES, {"Request": http.Request, "HTTPChannel": http.HTTPChannel})
    overridden = [f"WebRequest.{name}" for name in ("gotLength", "handleContentChunk", "requestReceived")
                  if name in vars(web_request) and not hasattr(vars(web_request)[name], "arkloop_original")]
    if "process" not in vars(web_request):
        overridden.append("WebRequest.process (missing)")
    patching.refuse("arkloop.daphne_body_limit", "what the request body limit hooks into", changed + overridden)


def _raw_response(request) -> bytes:
    traceparent = (request.requestHeaders.getRawHeaders(b"traceparent") or [b""])[0].decode("latin-1")
    status, headers, body = too_large_response(traceparent or None)
    head = [f"HTTP/1.1 {status} Content Too Large".encode()] + [name + b": " + value for name, value in headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _reject(request) -> None:
    """Answer 413, keep nothing more of this connection's input, close it after the linger."""
    request._arkloop_rejected = True
    request.requestHeaders.removeHeader(b"Expect")  # Twisted would send "100 Continue" after our answer
    channel = request.channel
    transport = channel.transport
    log.info("413: request body over %d bytes from %s", max_body_bytes(), transport.getPeer())
    channel.dataReceived = lambda data: None  # later input is read and dropped
    transport.write(_raw_response(request))
    transport.loseWriteConnection()
    from twisted.internet import reactor

    reactor.callLater(LINGER_SECONDS, transport.abortConnection)


def limit_daphne_request_bodies() -> None:
    """Patch Daphne's request class once; a no-op when Daphne is not installed (arkloop.body.BodyLimit
    still applies under another ASGI server)."""
    patching.patch_daphne_once("arkloop.daphne_body_limit", _patch)


def _patch(WebRequest: type, http: ModuleType) -> None:
    _check_twisted(http, WebRequest)
    process = WebRequest.process

    def gotLength(self, length: int | None) -> None:
        self._arkloop_body_bytes = 0
        self._parsePOSTFormSubmission = False  # Daphne passes the raw body on, never Twisted's parsed args
        if length is not None and length > max_body_bytes():
            http.Request.gotLength(self, 0)  # an empty body for Twisted's bookkeeping
            _reject(self)
            return
        http.Request.gotLength(self, length)

    def handleContentChunk(self, data: bytes) -> None:
        if getattr(self, "_arkloop_rejected", False):
            return
        self._arkloop_body_bytes += len(data)
        if self._arkloop_body_bytes > max_body_bytes():
            _reject(self)
            return
        http.Request.handleContentChunk(self, data)

    def process_unless_rejected(self):
        if getattr(self, "_arkloop_rejected", False):
            return None  # answered already: the application never sees this request
        return process(self)

    WebRequest.gotLength = patching.mark(gotLength, http.Request.gotLength)
    WebRequest.handleContentChunk = patching.mark(handleContentChunk, http.Request.handleContentChunk)
    WebRequest.process = patching.mark(process_unless_rejected, process)
