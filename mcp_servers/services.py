"""Writes of MCP servers. Header values go in through here (encrypted) and are never given back."""
from __future__ import annotations

import logging
import re
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from arkloop.errors import ValidationFailed
from arkloop.outbound import OutboundRefused, check_outbound_url
from arkloop.services import check_org_under_cap
from arkloop.text import text_is_clean
from mcp_servers.headers import headers_check, headers_seal
from mcp_servers.models import McpServer

log = logging.getLogger(__name__)
MAX_ALLOWED_TOOLS = 1000
_TOOL_NAME = re.compile(r"[^\s\x00-\x1f\x7f]{1,128}\Z")
UPDATABLE = ("name", "url", "headers", "allowed_tools", "require_approval", "timeout_seconds")


def check_mcp_server_url(url: str) -> str:
    """The URL rule shared with webhooks (arkloop.outbound); 422 naming `url` otherwise."""
    try:
        return check_outbound_url(url)
    except OutboundRefused as exc:
        raise ValidationFailed({"url": [str(exc)]}) from None


def check_mcp_server_headers(headers: Any) -> dict[str, str]:
    problems = headers_check(headers)
    if problems:
        raise ValidationFailed({"headers": problems})
    return headers


def check_mcp_server_allowed_tools(value: Any) -> list[str] | None:
    """None (every tool), or a list of tool names: repeats dropped, order kept; 422 naming the field."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_ALLOWED_TOOLS or not all(
            isinstance(name, str) and _TOOL_NAME.match(name) and text_is_clean(name) for name in value):
        raise ValidationFailed({"allowed_tools": [f"must be null or a list of at most {MAX_ALLOWED_TOOLS} tool "
                                                  "names (1 to 128 characters, no spaces or control characters)"]})
    return list(dict.fromkeys(value))


def check_mcp_server_name(*, org_id: Any, name: str, server_id: Any = None) -> str:
    """Names are unique in an org: the model calls tools by `mcp__<name>__<tool>`."""
    taken = McpServer.objects.filter(org_id=org_id, name=name).exclude(pk=server_id).exists()
    if taken:
        raise _name_taken(name)
    return name


def _name_taken(name: str) -> ValidationFailed:
    return ValidationFailed({"name": [f"this org already has an MCP server named {name!r}"]})


def mcp_server_create(*, org_id: Any, name: str, url: str, headers: dict[str, str] | None = None,
                      allowed_tools: list[str] | None = None,
                      require_approval: str = McpServer.Approval.UNLESS_READ_ONLY,
                      timeout_seconds: int = 30) -> McpServer:
    """Register a server for the org. Raises ValidationFailed naming the field (name taken, url refused),
    or `non_field_errors` when the org already has ARKLOOP_MAX_MCP_SERVERS_PER_ORG servers."""
    server = McpServer(org_id=org_id, name=check_mcp_server_name(org_id=org_id, name=name),
                       url=check_mcp_server_url(url), allowed_tools=check_mcp_server_allowed_tools(allowed_tools),
                       require_approval=require_approval, timeout_seconds=timeout_seconds)
    server.header_names, server.headers_encrypted = headers_seal(check_mcp_server_headers(headers or {}))
    with transaction.atomic():  # only now: the URL check above may wait on DNS, not holding the org's lock
        check_org_under_cap(org_id=org_id, cap=settings.ARKLOOP_MAX_MCP_SERVERS_PER_ORG, what="MCP servers",
                            existing=McpServer.objects.filter(org_id=org_id))
        _save(server)
    log.info("MCP server %s created in org %s (headers: %s)", server.pk, org_id, server.header_names)
    return server


def mcp_server_update(*, server: McpServer, changes: dict[str, Any]) -> McpServer:
    """Change some of UPDATABLE. `headers` replaces every header ({} removes them); any edit makes
    runners list the server's tools again (its `updated_at` is part of their cache key)."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    if "name" in changes:
        server.name = check_mcp_server_name(org_id=server.org_id, name=changes["name"], server_id=server.pk)
    if "url" in changes:
        server.url = check_mcp_server_url(changes["url"])
    if "headers" in changes:
        server.header_names, server.headers_encrypted = headers_seal(check_mcp_server_headers(changes["headers"]))
    if "allowed_tools" in changes:
        server.allowed_tools = check_mcp_server_allowed_tools(changes["allowed_tools"])
    for name in ("require_approval", "timeout_seconds"):
        if name in changes:
            setattr(server, name, changes[name])
    _save(server)
    log.info("MCP server %s updated (%s)", server.pk, ", ".join(sorted(changes)) or "nothing")
    return server


def mcp_server_delete(*, server: McpServer) -> None:
    """Remove the server: runs stop offering its tools; a call by its name is denied from then on."""
    McpServer.objects.filter(pk=server.pk).delete()
    log.info("MCP server %s deleted", server.pk)


def _save(server: McpServer) -> None:
    """Save; two requests racing for one name both passed the check, and the constraint decides."""
    try:
        with transaction.atomic():
            server.save()
    except IntegrityError:
        if McpServer.objects.filter(org_id=server.org_id, name=server.name).exclude(pk=server.pk).exists():
            raise _name_taken(server.name) from None
        raise
