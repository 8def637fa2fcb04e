"""Under Daphne, send a response's bytes at once when the socket has nothing queued.

Twisted's TCP transport never writes in `write()`: it appends to a buffer and registers the
socket for writability; the bytes leave on the reactor's next turn, after which it unregisters
the socket again. For one request that costs nothing visible. For an event fanned out to 1,000
SSE streams it costs 2,000 epoll registrations per event, and no follower receives a byte until
all 1,000 writes have been queued (profiles in docs/performance.md). This patch tries
`send()` first when nothing is buffered — what asyncio's own transports do — and hands only what
the kernel did not take (or any error) to Twisted's buffered path, so ordering, back-pressure
and connection-loss handling stay Twisted's.
"""
from __future__ import annotations

_patched = False


def enable_eager_writes() -> None:
    """Patch Twisted's TCP connections once; a no-op when Twisted is not installed."""
    global _patched
    if _patched:
        return
    try:
        from twisted.internet import tcp
    except ImportError:
        return
    buffered_write = tcp.Connection.write

    def write(self, data: bytes) -> None:
        if (isinstance(data, bytes) and data and not self.TLS and self.connected
                and not self._writeDisconnected and not self.disconnecting
                and not self._tempDataBuffer and not self.dataBuffer):
            sent = self.writeSomeData(data)
            if isinstance(sent, int):  # else the connection is lost: Twisted's path reports it
                data = data[sent:]
                if not data:
                    return
        buffered_write(self, data)

    tcp.Connection.write = write
    _patched = True
