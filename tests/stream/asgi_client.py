"""Drive the ASGI application in-process, for tests that look inside the server (hub counters)."""
from __future__ import annotations

import asyncio
from typing import Any

HANG_GUARD = 20.0


class AsgiStream:
    """One GET request to the ASGI app whose body is read as it streams, and that can hang up."""

    def __init__(self, app: Any, path: str, query: str = "", headers: dict[str, str] | None = None) -> None:
        self.scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
            "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        }
        self.app = app
        self.sent: asyncio.Queue[dict] = asyncio.Queue()
        self.hung_up = asyncio.Event()
        self.body = b""
        self.status: int | None = None
        self.task: asyncio.Task | None = None
        self._request_sent = False

    async def _receive(self) -> dict:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.hung_up.wait()
        return {"type": "http.disconnect"}

    async def open(self) -> AsgiStream:
        self.task = asyncio.create_task(self.app(self.scope, self._receive, self.sent.put))
        start = await asyncio.wait_for(self.sent.get(), HANG_GUARD)
        self.status = start["status"]
        return self

    async def read_chunk(self) -> bool:
        """Read one body message; False once the response is complete."""
        message = await asyncio.wait_for(self.sent.get(), HANG_GUARD)
        self.body += message.get("body", b"")
        return message.get("more_body", False)

    async def read_until(self, marker: bytes) -> bytes:
        """Read body chunks until `marker` has been received; returns the body so far."""
        while marker not in self.body and await self.read_chunk():
            pass
        return self.body

    async def hang_up(self) -> None:
        """Disconnect like a client closing the socket, and wait for the app to finish."""
        self.hung_up.set()
        await asyncio.wait_for(self.task, HANG_GUARD)
