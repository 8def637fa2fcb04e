"""Talking to one MCP server with the official `mcp` SDK over streamable HTTP: list its tools, call one.

Every listing and every call opens a session of its own and closes it at the end, so nothing is
kept between calls: a server that failed is reconnected on the next use, a slow server delays
only its own calls, and an interrupted call leaves no session behind to clean up later.

Time: each listing or call gets the server's `timeout_seconds` in all, connection included. A
session that is not up by then is `mcp.unavailable`; a call that has not answered is
`tool.timeout`. Cancelling the awaiting task (a run cancelled, or out of time) interrupts the
call at once: the SDK aborts the request, the server sees the request go away, and the session's
goodbye (a DELETE) is refused rather than sent, so a stalled server cannot hold the cancel up.

Size: every byte from a server passes through `_Transport`, which counts it as it is read and
closes the response past MAX_RESPONSE_BYTES (one HTTP response: a JSON body, or an SSE stream
however long it keeps sending) or past MAX_SESSION_BYTES (all responses of one listing or call,
every page of a listing included). The SDK would otherwise read a whole body into memory before
anything here could look at its size, and the runner is shared by every org's runs. Bodies must
come uncompressed (a compressed one could grow past any cap after it was counted).

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
# Bytes read from a server: a result of MAX_RESULT_BYTES fits one response with room for JSON escaping
# (a text block of control characters doubles) and the protocol's framing; a listing fits all its pages.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_SESSION_BYTES = 8 * 1024 * 1024
# The HTTP client's own timeouts sit behind the overall deadline, so that deadline decides the outcome.
HTTP_TIMEOUT_MARGIN_SECONDS = 5
_UNREACHABLE = (httpx2.TransportError, OSError, OutboundRefused, anyio.BrokenResourceError,
                anyio.ClosedResourceError, anyio.EndOfStream)


async def mcp_tools_list(config: ServerConfig) -> list[McpTool]:
    """Every tool the server offers (all pages). Raises McpFailure("mcp.unavailable", …)."""
    tools: list[McpTool] | None = None
    transport = _Transport()
    deadline = asyncio.timeout(config.timeout_seconds)
    try:
        async with deadline:
            async with _session(config, transport) as client:
                tools = [_tool(tool) async for tool in _listing(client)]
    except Exception as exc:  # every way of not getting an answer is "unavailable"
        _raise_if_cancelled()
        if transport.refusal is not None:
            raise McpFailure("mcp.unavailable", f"MCP server {config.name!r} {transport.refusal}") from None
        if tools is None:
            raise _unavailable(config, exc, timed_out=deadline.expired()) from None
    return tools


async def mcp_tool_call(config: ServerConfig, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call tool `name`: `{"content": [<MCP content blocks>], "is_error": bool}`, or McpFailure."""
    result: CallToolResult | None = None
    connected = False
    transport = _Transport()
    deadline = asyncio.timeout(config.timeout_seconds)
    try:
        async with deadline:
            async with _session(config, transport) as client:
                connected = True
                result = await client.call_tool(name, arguments)
    except Exception as exc:  # classified below
        _raise_if_cancelled()
        if transport.refusal is not None:
            raise McpFailure("mcp.error", f"MCP server {config.name!r} {transport.refusal}") from None
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


class ResponseRefused(httpx2.SSEError):
    """A response was cut off (too large, or compressed). An SSEError because that is the failure the SDK's SSE
    reader takes as final: it resolves the request at once instead of reconnecting to the stream."""


class _Transport(httpx2.AsyncBaseTransport):
    """PublicOnlyTransport2 for one session: caps the bytes read from the server (`refusal` then says
    why, and every later request is refused too), and can be told to refuse new requests while
    requests in flight go on."""

    def __init__(self) -> None:
        self.inner = PublicOnlyTransport2()
        self.closing = False
        self.received = 0
        self.refusal: str | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.closing or self.refusal is not None:
            raise httpx2.ConnectError("the session is being closed")
        response = await self.inner.handle_async_request(request)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":  # asked for identity: a compressed body could grow past the caps once counted
            await response.aclose()
            self.refusal = f"sent a compressed response (Content-Encoding: {encoding[:40]}), which is not accepted"
            raise ResponseRefused(self.refusal)
        response.stream = _CappedStream(response.stream, self)
        return response

    def count(self, response_bytes: int, chunk: int) -> None:
        """Account for `chunk` more bytes; past a cap, ResponseRefused (the response is then closed)."""
        self.received += chunk
        if response_bytes > MAX_RESPONSE_BYTES:
            self.refusal = f"sent more than {MAX_RESPONSE_BYTES} bytes in one response; it was cut off"
        elif self.received > MAX_SESSION_BYTES:
            self.refusal = f"sent more than {MAX_SESSION_BYTES} bytes in all for one listing or call; it was cut off"
        if self.refusal is not None:
            raise ResponseRefused(self.refusal)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _CappedStream(httpx2.AsyncByteStream):
    """A response body, counted as it is read (before any of it is kept)."""

    def __init__(self, inner: httpx2.AsyncByteStream, transport: _Transport) -> None:
        self.inner = inner
        self.transport = transport

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self.inner:
            received += len(chunk)
            self.transport.count(received, len(chunk))
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def _session(config: ServerConfig, transport: _Transport) -> AsyncIterator[Client]:
    """An initialized MCP session with the server over `transport`, closed at the end whatever happens."""
    if config.problem:
        raise McpFailure("mcp.unavailable", f"MCP server {config.name!r}: {config.problem}")
    timeout = httpx2.Timeout(config.timeout_seconds + HTTP_TIMEOUT_MARGIN_SECONDS)
    headers = {name: value for name, value in config.headers.items() if name.lower() != "accept-encoding"}
    headers["Accept-Encoding"] = "identity"  # bodies are counted as they come: see _Transport
    async with httpx2.AsyncClient(transport=transport, headers=headers, follow_redirects=False,
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
