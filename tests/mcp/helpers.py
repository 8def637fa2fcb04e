"""Registering MCP servers through the API, and unreachable endpoints to register."""
from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.fakes.mcp_server import TOKEN
from tests.servers import free_port

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def register(actor, url: str, name: str = "calc", **fields: Any) -> dict[str, Any]:
    """POST /v1/mcp-servers with the test server's token header; returns the created server."""
    body = {"name": name, "url": url, "headers": AUTH, **fields}
    response = actor.client.post("/v1/mcp-servers", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def closed_url() -> str:
    """An MCP URL on a port nothing listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/mcp"


class StalledServer:
    """An endpoint that accepts connections, counts them, and never answers (a stalled server)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/mcp"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # closed at the end
            while True:
                self.connections.append(self.listener.accept()[0])

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


@contextmanager
def silent_url() -> Iterator[StalledServer]:
    server = StalledServer()
    try:
        yield server
    finally:
        server.close()
