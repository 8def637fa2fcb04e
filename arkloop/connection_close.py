"""Let an ASGI response end its TCP connection under Daphne by sending `Connection: close`.

Twisted (under Daphne) decides whether a connection stays open from the *request's* headers
only, and frames a body of unknown length with chunked encoding. An event stream that has sent
its terminal event should end for every client, including the simplest one that reads the socket
until EOF; so a response that says `Connection: close` makes Daphne drop the connection once the
response is complete, as RFC 9112 §9.6 intends.

The Daphne and Twisted code this relies on is checked when the patch is applied
(arkloop/patching.py): Daphne's `handle_reply`, which it wraps, and where Twisted sets
`channel.persistent` from the request and reads it to close the connection after the response. Both are pinned in
requirements.txt.
"""
from __future__ import annotations

from types import ModuleType

from arkloop import patching

# sha256 of the source of the Daphne 4.2.3 / Twisted 26.10.0 code this patch relies on.
_EXPECTED_SOURCES = {
    "WebRequest.handle_reply": "3e14b239c2602d950e4fb724eb5d31d540aafa6499d08e576132fdb0ad1397ca",
    "HTTPChannel.checkPersistence": "3f0cb5b5a40e1109f49adc13d37dfa4b3036ddbd7160ca26d9347ab9aea22ed7",
    "HTTPChannel.requestDone": "a75a186c66f7d38d33256f146bc512e938c00b2753f8caf50c441cc9ce5af1b0",
}


def _says_close(headers) -> bool:
    return any(name.lower() == b"connection" and value.lower() == b"close" for name, value in headers or ())


def _check(web_request, http) -> None:
    owners = {"WebRequest": web_request, "HTTPChannel": http.HTTPChannel}
    patching.refuse("arkloop.connection_close", "Daphne's reply handling or Twisted's keep-alive decision",
                    patching.changed(_EXPECTED_SOURCES, owners))


def honor_connection_close() -> None:
    """Patch Daphne's request class once; a no-op when Daphne is not installed or not serving."""
    patching.patch_daphne_once("arkloop.connection_close", _patch)


def _patch(WebRequest: type, http: ModuleType) -> None:
    _check(WebRequest, http)
    original = WebRequest.handle_reply

    def handle_reply(self, message):
        if message.get("type") == "http.response.start" and _says_close(message.get("headers")):
            self.channel.persistent = False  # Twisted closes the socket when this response finishes
        return original(self, message)

    WebRequest.handle_reply = patching.mark(handle_reply, original)
