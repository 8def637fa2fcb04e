"""MCP tool listings shared by the runs of one runner process.

Listing a server costs a session (a round trip or two, up to the server's timeout when it does not
answer), and every run of its org wants it before its first turn. So, per process:

- a successful listing is kept for LISTING_TTL_SECONDS and a failed one for FAILED_TTL_SECONDS,
  both keyed by the server's version (`updated_at`): an edit is seen at once, and a dead server
  delays at most one run start every FAILED_TTL_SECONDS instead of every run's;
- one listing per server at a time: runs that need it meanwhile wait for the same one (a run that
  is cancelled stops waiting; the listing goes on for the others).

`retry_failure=True` asks a server again rather than believe a cached failure, and `fresh=True`
asks it whatever is cached (both for deciding an approval, where an answer matters more than time).
"""
from __future__ import annotations

import asyncio
import time

from mcp_servers.config import McpFailure, McpTool, ServerConfig

LISTING_TTL_SECONDS = 60.0
FAILED_TTL_SECONDS = 10.0

# server id → (expires at, server version, its tools or why they could not be listed)
_cache: dict[str, tuple[float, str, list[McpTool] | McpFailure]] = {}
_inflight: dict[tuple[str, str], asyncio.Task] = {}


async def listing_fetch(server: ServerConfig, *, retry_failure: bool = False, fresh: bool = False) -> list[McpTool]:
    """The server's tools, or McpFailure (mcp.unavailable)."""
    cached = None if fresh else _cache.get(server.id)
    if cached is not None and cached[0] > time.monotonic() and cached[1] == server.version:
        if not isinstance(cached[2], McpFailure):
            return cached[2]
        if not retry_failure:
            raise cached[2]
    return await asyncio.shield(_shared(server))


def _shared(server: ServerConfig) -> asyncio.Task:
    """The listing of `server` in progress in this event loop, or a new one."""
    key, loop = (server.id, server.version), asyncio.get_running_loop()
    task = _inflight.get(key)
    if task is None or task.done() or task.get_loop() is not loop:
        task = loop.create_task(_list_and_keep(server))
        _inflight[key] = task
        task.add_done_callback(lambda done: _inflight.pop(key) if _inflight.get(key) is done else None)
    return task


async def _list_and_keep(server: ServerConfig) -> list[McpTool]:
    from mcp_servers.client import mcp_tools_list  # the SDK loads when a run first needs it

    try:
        tools = await mcp_tools_list(server)
    except McpFailure as failure:
        _cache[server.id] = (time.monotonic() + FAILED_TTL_SECONDS, server.version, failure)
        raise
    _cache[server.id] = (time.monotonic() + LISTING_TTL_SECONDS, server.version, tools)
    return tools
