"""One real MCP server (the SDK's own, over streamable HTTP, in a subprocess) for all MCP tests."""
from __future__ import annotations

import pytest

from tests.fakes.mcp_server import McpServerProcess


@pytest.fixture(scope="session")
def mcp_server() -> McpServerProcess:
    with McpServerProcess() as server:
        yield server


@pytest.fixture(autouse=True)
def private_urls_allowed(settings) -> None:
    """The test server listens on 127.0.0.1, which the URL rule refuses unless this is on."""
    settings.ARKLOOP_ALLOW_PRIVATE_URLS = True
