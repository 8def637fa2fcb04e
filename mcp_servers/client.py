"""Talking to one MCP server with the official `mcp` SDK over streamable HTTP: list its tools, call one.

Every listing and every call opens a session of its own and closes it at the end, so nothing is
kept between calls: a server that failed is reconnected on the next use, a slow server delays
only its own calls, and an interrupted call leaves no session behind to clean up later.

Time: each listing or call gets the server's `timeout_seconds` in all, connection included. A
session that is not up by then is `mcp.unavailable`; a call that has not answered is
`tool.timeout`. Cancelling the awaiting task (a run cancelled, or out of time) interrupts the
call at once: the SDK aborts the request, the server sees the request go away, and the session's
goodbye (a DELETE) is refused rather than sent, so a stalled server cannot hold the cancel up.

Addresses: the HTTP client is httpx2 (the SDK's) over `arkloop.outbound.PublicOnlyTransport2`,
which connects only to public addresses unless ARKLOOP_ALLOW_PRIVATE_URLS is on, and never
follows a redirect off the endpoint's origin (the SDK's rule).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT, CallToolResult, Implementation, Tool

from arkloop.outbound import OutboundRefused, PublicOnlyTransport2
from arkloop.text import json_clean, text_clean
from mcp_servers.config import McpFailure, McpTool, ServerConfig

CLIENT_INFO = Implementation(name="arkloop-runs", version="1")
MAX_LIST_PAGES = 20              # a server whose listing never ends cannot hang a run
MAX_RESULT_BYTES = 1024 * 1024   # a tool result larger than this (as JSON) is refused, not stored
# The HTTP client's own timeouts sit behind the overall deadline, so that deadline decides the outcome.
HTTP_TIMEOUT_MARGIN_SECONDS = 5
_UNREACHABLE = (httpx2.TransportError, OSError, OutboundRefused, anyio.BrokenResourceError,
                anyio.ClosedResourceError, anyio.EndOfStream)


async def mcp_tools_list(config: ServerConfig) -> list[McpTool]:
    """Every tool the server offers (all pages). Raises McpFailure("mcp.unavailable", …)."""
    tools: list[McpTool] | None = None
    deadline = asyncio.timeout(config.timeout_seconds)
    try:
        async with deadline:
            async with _session(config) as client:
                tools = [_tool(tool) async for tool in _listing(client)]
    except Exception as exc:  # every way of not getting an answer is "unavailable"
        _raise_if_cancelled()
        if tools is None:
            raise _unavailable(config, exc, timed_out=deadline.expired()) from None
    return tools


async def mcp_tool_call(config: ServerConfig, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call tool `name`: `{"content": [<MCP content blocks>], "is_error": bool}`, or McpFailure."""
    result: CallToolResult | None = None
    connected = False
    deadline = asyncio.timeout(config.timeout_seconds)
    try:
        async with deadline:
            async with _session(config) as client:
                connected = True
                result = await client.call_tool(name, arguments)
    except Exception as exc:  # classified below
        _raise_if_cancelled()
        if result is None and not connected:
            raise _unavailable(config, exc, timed_out=deadline.expired()) from None
        if result is None:
            raise _call_failure(config, exc, timed_out=deadline.expired()) from None
    return _result_data(config, result)


def _raise_if_cancelled() -> None:
    """A cancelled task must end cancelled, even when the SDK's task groups surfaced something else
    on the way out (a request that failed while being torn down)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


class _Transport(httpx2.AsyncBaseTransport):
    """PublicOnlyTransport2 that can be told to refuse new requests while requests in flight go on."""

    def __init__(self) -> None:
        self.inner = PublicOnlyTransport2()
        self.closing = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.closing:
            raise httpx2.ConnectError("the session is being closed")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def _session(config: ServerConfig) -> AsyncIterator[Client]:
    """An initialized MCP session with the server, closed at the end whatever happens."""
    if config.problem:
        raise McpFailure("mcp.unavailable", f"MCP server {config.name!r}: {config.problem}")
    transport = _Transport()
    timeout = httpx2.Timeout(config.timeout_seconds + HTTP_TIMEOUT_MARGIN_SECONDS)
    async with httpx2.AsyncClient(transport=transport, headers=config.headers, follow_redirects=False,
                                  timeout=timeout) as http:
        async with Client(streamable_http_client(config.url, http_client=http), client_info=CLIENT_INFO,
                          cache=None) as client:
            try:
                yield client
            except BaseException:
                # Failed, timed out or cancelled: the session's goodbye (a DELETE) is refused at once
                # rather than sent to a server that may be stalled, so nothing holds the unwinding up.
                transport.closing = True
                raise


async def _listing(client: Client) -> AsyncIterator[Tool]:
    cursor: str | None = None
    for _ in range(MAX_LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        for tool in page.tools:
            yield tool
        cursor = page.next_cursor
        if not cursor:
            return


def _tool(tool: Tool) -> McpTool:
    schema = json_clean(tool.input_schema) if isinstance(tool.input_schema, dict) else {}
    schema = schema if schema.get("type") == "object" else {"type": "object", **schema}
    annotations = tool.annotations
    return McpTool(name=text_clean(tool.name), description=text_clean(tool.description or ""), input_schema=schema,
                   read_only=bool(annotations is not None and annotations.read_only_hint))


def _result_data(config: ServerConfig, result: CallToolResult) -> dict[str, Any]:
    content = [block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content]
    data = json_clean({"content": content, "is_error": bool(result.is_error)})
    size = len(json.dumps(data).encode())
    if size > MAX_RESULT_BYTES:
        raise McpFailure("mcp.error", f"MCP server {config.name!r} returned {size} bytes; at most "
                                      f"{MAX_RESULT_BYTES} bytes of tool result are kept")
    return data


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups: the SDK's task groups wrap what failed."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _unavailable(config: ServerConfig, exc: BaseException, *, timed_out: bool) -> McpFailure:
    failure = next((leaf for leaf in _leaves(exc) if isinstance(leaf, McpFailure)), None)
    if failure is not None:
        return failure
    if timed_out:
        return McpFailure("mcp.unavailable", f"MCP server {config.name!r} did not answer within "
                                             f"{config.timeout_seconds} s")
    return McpFailure("mcp.unavailable", f"MCP server {config.name!r} could not be reached ({_reason(exc)})")


def _call_failure(config: ServerConfig, exc: BaseException, *, timed_out: bool) -> McpFailure:
    """A call that failed after the session was up: out of time, the server went away, or it said no."""
    leaves = _leaves(exc)
    if timed_out or any(isinstance(leaf, MCPError) and leaf.code == REQUEST_TIMEOUT for leaf in leaves):
        return McpFailure("tool.timeout", f"MCP server {config.name!r} did not answer within "
                                          f"{config.timeout_seconds} s")
    for leaf in leaves:
        if isinstance(leaf, MCPError) and leaf.code != CONNECTION_CLOSED:
            return McpFailure("mcp.error", f"MCP server {config.name!r} answered with an error: {leaf.message}")
    if any(isinstance(leaf, (*_UNREACHABLE, MCPError)) for leaf in leaves):
        return McpFailure("mcp.unavailable", f"MCP server {config.name!r} went away ({_reason(exc)})")
    return McpFailure("mcp.error", f"MCP server {config.name!r}: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """A short description of what failed, without the URL (it may carry a token in its query)."""
    leaf = _leaves(exc)[0]
    if isinstance(leaf, OutboundRefused):
        return f"refused: the URL {leaf}"
    if isinstance(leaf, MCPError):
        return leaf.message
    if isinstance(leaf, httpx2.TransportError):
        return type(leaf).__name__  # httpx2 messages may quote the URL
    return type(leaf).__name__
