"""Under Daphne, write a live stream's frames straight to its socket, from the hub.

Through ASGI, one event fanned out to 1,000 followers costs 1,000 task wake-ups: the hub puts the
frame in each stream's queue, each stream's task wakes, passes the frame up its generators to
`send`, Daphne and Twisted chunk it, and Twisted's transport buffers it and registers the socket
with epoll, to write it on the reactor's next turn and unregister it again. That machinery, not
the socket write, was most of Daphne's CPU per delivered event (docs/performance.md). So while a
stream is live (caught up, its queue empty) the hub writes each next frame itself through the
function `chunk_writer(send)` returns:

- the frame's HTTP/1.1 chunk, framed once per event by the hub and shared by every follower
  (`runs.stream.sse.http_chunk`), is what Twisted's `Request.write` would send;
- it goes to the socket at once with `send()` when the transport has nothing buffered (what
  asyncio's own transports do); whatever the kernel did not take, or an error, goes to Twisted's
  buffered `write`, so ordering, back-pressure and connection-loss handling stay Twisted's, and
  the frames of a follower whose socket is full are coalesced into one write when it drains.

Everything else — headers, replays, pings, the end of the response — still goes through `send`.
`send` is Daphne's if it is `functools.partial(Server.handle_reply, <WebRequest>)` on a plain TCP
connection; with any other server, TLS terminated by Daphne, or an HTTP/1.0 client (whose body is
not chunked) there is no writer and every frame takes the ASGI path. The Daphne and Twisted code
this bypasses or imitates is checked at startup (`check_daphne`, arkloop/patching.py): an upgrade
that changed it stops the process instead of corrupting responses. Both are pinned in
requirements.txt.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from arkloop import patching

# sha256 of the source of the Daphne 4.2.3 / Twisted 26.10.0 code a direct write stands in for or
# relies on: Daphne's send (Server.handle_reply → WebRequest.handle_reply → Request.write) and
# Twisted's chunked branch of Request.write (toChunk); what ends the response or marks it gone
# (Request.finish writes the last chunk, connectionLost sets _disconnected); the TCP transport's
# write path, whose buffer the eager send checks and hands its remainder to.
_EXPECTED_SOURCES = {
    "Server.handle_reply": "9d9dbaea6de0657aab6d5eaa7e38781b5fd80924c5ddf334bada16aebed09413",
    "WebRequest.handle_reply": "3e14b239c2602d950e4fb724eb5d31d540aafa6499d08e576132fdb0ad1397ca",
    "Request.write": "0e547d4f76bd147248aa9c30ec79629f543077d253e24d7a57688ad8d783dea2",
    "Request.finish": "4590c5f7e2207ef0e035118592a49d0e94da0dd941a1530d34f0c49db1dd1926",
    "Request.connectionLost": "e874acaf9f19205d5b7ed2a52b73a8327013a0c3df87a724eab07caabe5e4ba4",
    "HTTPChannel.write": "054334c7d19259b33286d7742f759217b19464003e13c864a7aa1e7ee9a78eb5",
    "http.toChunk": "f326a3bed37a6be62a4716a51d614bcebecb0e3d8fd82d149e5a3fecb8a8619e",
    "Connection.write": "ea311df0946d3f997a11838e59692e33a6734dcd42a0f29b3331e7ad3ca8117a",
    "Connection.writeSomeData": "2dd0d4209260b94e2c6c4e8a16e014346cb432e7d0bfa294f8fe9e1b8b008d26",
    "FileDescriptor.__init__": "6405435a8c04d4c93a9eafba2c3aed131bed02c3ef995fccc1949133328a0009",
    "FileDescriptor.write": "3e46c97fc173bc7e227065420969c27688f24903c27dcc165b63166a605d688c",
    "FileDescriptor.doWrite": "a986d7b1b1054e431495d50528824683fa7ebb1ffcf3e57333bdd6f37f603141",
}
_daphne: tuple[Callable, type, type] | None = None  # (Server.handle_reply, WebRequest, tcp.Connection)

ChunkWriter = Callable[[bytes, int], bool]


def check_daphne() -> None:
    """Refuse to start when the Daphne or Twisted code a direct write relies on changed; a no-op
    when Daphne is not installed (then no writer is ever made)."""
    global _daphne
    try:
        from daphne.http_protocol import WebRequest
        from daphne.server import Server
        from twisted.internet import abstract, tcp
        from twisted.web import http
    except ImportError:
        return
    owners = {"Server": Server, "WebRequest": WebRequest, "Request": http.Request, "HTTPChannel": http.HTTPChannel,
              "http": http, "Connection": tcp.Connection, "FileDescriptor": abstract.FileDescriptor}
    patching.refuse("runs.stream.transport", "Daphne's or Twisted's response writing",
                    patching.changed(_EXPECTED_SOURCES, owners))
    _daphne = (Server.handle_reply, WebRequest, tcp.Connection)


def chunk_writer(send: Callable) -> ChunkWriter | None:
    """For Daphne's `send` of a chunked response whose head is written: `write(chunk, size)`
    sends the HTTP/1.1 chunk of a `size`-byte body (`http_chunk`) and returns True, or returns False (writing
    nothing) once the response is finished or the client gone. None for anything else."""
    if _daphne is None or not isinstance(send, functools.partial) or len(send.args) != 1:
        return None
    handle_reply, web_request, tcp_connection = _daphne
    request = send.args[0]
    if getattr(send.func, "__func__", None) is not handle_reply or not isinstance(request, web_request):
        return None
    if not (request.chunked and request.startedWriting) or request.finished or request._disconnected:
        return None
    transport = request.channel.transport
    if not isinstance(transport, tcp_connection) or transport.TLS:
        return None

    def write(chunk: bytes, size: int) -> bool:
        if request.finished or request._disconnected or request.channel is None:
            return False
        request.sentLength += size  # Twisted's bookkeeping (Daphne's access log reports it)
        if (transport.connected and not transport.disconnecting and not transport._writeDisconnected
                and not transport._tempDataBuffer and not transport.dataBuffer):
            sent = transport.writeSomeData(chunk)
            if not isinstance(sent, int):  # the connection is lost: Twisted's write path reports it
                sent = 0
            elif sent == len(chunk):
                return True
            chunk = chunk[sent:]
        transport.write(chunk)
        return True

    return write
