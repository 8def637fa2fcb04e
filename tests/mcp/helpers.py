"""Registering MCP servers through the API, and unreachable endpoints to register."""
from __future__ import annotations

import socket
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


@contextmanager
def silent_url() -> Iterator[str]:
    """An MCP URL that accepts connections and never answers (a stalled server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
