"""Let an ASGI response end its TCP connection under Daphne by sending `Connection: close`.

Twisted (under Daphne) decides whether a connection stays open from the *request's* headers
only, and frames a body of unknown length with chunked encoding. An event stream that has sent
its terminal event should end for every client, including the simplest one that reads the socket
until EOF; so a response that says `Connection: close` makes Daphne drop the connection once the
response is complete, as RFC 9112 §9.6 intends.
"""
from __future__ import annotations

_patched = False


def _says_close(headers) -> bool:
    return any(name.lower() == b"connection" and value.lower() == b"close" for name, value in headers or ())


def honor_connection_close() -> None:
    """Patch Daphne's request class once; a no-op when Daphne is not installed or not serving."""
    global _patched
    if _patched:
        return
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:  # served by another ASGI server: nothing to do
        return
    original = WebRequest.handle_reply

    def handle_reply(self, message):
        if message.get("type") == "http.response.start" and _says_close(message.get("headers")):
            self.channel.persistent = False  # Twisted closes the socket when this response finishes
        return original(self, message)

    WebRequest.handle_reply = handle_reply
    _patched = True
