"""Reads of MCP servers: the API's (one org, admins only — the views check the role) and the runner's."""
from __future__ import annotations

from typing import Any

from arkloop.access import parse_uuid
from arkloop.api import Page, keyset_page
from arkloop.authentication import Principal
from arkloop.errors import ApiError, NotFound, ValidationFailed
from mcp_servers.config import McpFailure, McpTool, ServerConfig
from mcp_servers.headers import HeadersUnreadable, headers_open
from mcp_servers.models import McpServer


class McpServerNotFound(NotFound):
    code = "mcp_servers.not_found"
    message = "MCP server not found"


def access_mcp_server(*, principal: Principal, server_id: object) -> McpServer:
    """The org's server with this id; mcp_servers.not_found for anything else (malformed, another org's)."""
    pk = parse_uuid(server_id, not_found=McpServerNotFound)
    server = McpServer.objects.filter(pk=pk, org_id=principal.org_id).first()
    if server is None:
        raise McpServerNotFound()
    return server


def mcp_server_list(*, principal: Principal, limit: int, before: str | None = None) -> Page:
    """The org's servers, newest first (created_at desc, id desc), after the `before` server."""
    anchor = None
    if before:
        try:
            anchor = access_mcp_server(principal=principal, server_id=before)
        except NotFound:
            raise ValidationFailed({"before": ["must be the id of an MCP server from the previous page"]}) from None
    return keyset_page(McpServer.objects.filter(org_id=principal.org_id), limit=limit, before=anchor)


def mcp_server_config(*, server: McpServer) -> ServerConfig:
    """What a session with `server` needs, its header values decrypted (for the HTTP client only)."""
    try:
        headers, problem = headers_open(server.headers_encrypted), ""
    except HeadersUnreadable as exc:
        headers, problem = {}, str(exc)
    return ServerConfig(id=str(server.pk), name=server.name, url=server.url, headers=headers,
                        allowed_tools=server.allowed_tools, require_approval=server.require_approval,
                        timeout_seconds=server.timeout_seconds, version=server.updated_at.isoformat(),
                        problem=problem)


def mcp_server_configs(*, org_id: Any) -> list[ServerConfig]:
    """Every server of the org, for a run of that org."""
    return [mcp_server_config(server=server) for server in McpServer.objects.filter(org_id=org_id).order_by("name")]


class McpUnavailable(ApiError):
    status = 502
    code = "mcp.unavailable"
    message = "the MCP server could not be reached"


async def mcp_server_tools(*, config: ServerConfig) -> list[McpTool]:
    """The tools the server offers, asked now; McpUnavailable (502) when it does not answer in time."""
    from mcp_servers.client import mcp_tools_list  # the SDK loads on first use, not with the URL conf

    try:
        return await mcp_tools_list(config)
    except McpFailure as failure:
        raise McpUnavailable(message=failure.message) from None
