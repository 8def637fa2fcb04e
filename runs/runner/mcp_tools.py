"""The MCP tools of one run: its org's servers, offered as `mcp__<server>__<tool>`.

- Offering: the servers the persona's `tools` could reach are listed at once (in parallel, each
  within its own timeout) before the first turn of an execution; a server that cannot be listed
  offers nothing this time, the others are unaffected. A successful listing is kept for
  LISTING_TTL_SECONDS per runner process, keyed by the server's `updated_at`, so an edit is seen
  at once. Tools whose full name a provider would refuse (not `[A-Za-z0-9_-]{1,64}`) are not offered.
- Permission (no network): the name must be `mcp__<a server of the org>__<tool>`, allowed by the
  persona's `tools` and by the server's `allowed_tools` when set; anything else is `tool.denied`.
- Approval: `require_approval` `never` and `always` decide alone; `unless_read_only` asks the
  listing whether the tool carries `readOnlyHint` (listing again if needed: an unreachable server's
  tool then answers `mcp.unavailable` without bothering the user, and a tool the server does not
  offer answers `mcp.error`).
- Calling: one session per call (mcp_servers.client), the server's timeout, and every failure a
  ToolFailed the model reads: `tool.timeout`, `mcp.unavailable` or `mcp.error`.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from mcp_servers.config import McpFailure, McpTool, ServerConfig
from personas.tool_patterns import tool_allowed
from runs.runner.providers.base import ToolSpec
from runs.runner.tools import ToolFailed, ToolPlan

log = logging.getLogger("runs.runner")
PREFIX = "mcp__"
SEPARATOR = "__"
LISTING_TTL_SECONDS = 60.0
OFFERABLE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")  # what OpenAI and Anthropic accept as a tool name

# Per runner process: server id → (expires at, server version, tools). Successes only.
_listings: dict[str, tuple[float, str, list[McpTool]]] = {}


def is_mcp_tool(name: str) -> bool:
    return name.startswith(PREFIX)


class McpTools:
    def __init__(self, *, servers: list[ServerConfig], patterns: list[str]) -> None:
        self.servers = servers
        self.patterns = patterns
        self._listed: dict[str, list[McpTool]] = {}  # this execution's listings

    # --- offering -----------------------------------------------------------------------------

    async def specs(self) -> list[ToolSpec]:
        """The MCP tools to offer the model this turn (listing each reachable server once)."""
        servers = [server for server in self.servers if self._reachable_by_persona(server)]
        listings = await asyncio.gather(*(self._listing(server) for server in servers), return_exceptions=True)
        specs = []
        for server, listing in zip(servers, listings, strict=True):
            if isinstance(listing, BaseException):
                log.info("MCP server %s offers no tools this turn: %s", server.id, listing)
                continue
            specs += [spec for tool in listing if (spec := self._spec(server, tool)) is not None]
        return specs

    def _reachable_by_persona(self, server: ServerConfig) -> bool:
        """Some name `mcp__<server>__…` could be allowed by the persona (no point listing otherwise)."""
        prefix = f"{PREFIX}{server.name}{SEPARATOR}"
        return any(pattern.startswith(prefix) or (pattern.endswith("*") and prefix.startswith(pattern[:-1]))
                   for pattern in self.patterns)

    def _spec(self, server: ServerConfig, tool: McpTool) -> ToolSpec | None:
        name = f"{PREFIX}{server.name}{SEPARATOR}{tool.name}"
        if self.check(name) or not OFFERABLE_NAME.match(name):
            return None
        return ToolSpec(name=name, description=tool.description, parameters=tool.input_schema)

    # --- permission and approval ----------------------------------------------------------------

    def resolve(self, name: str) -> tuple[ServerConfig, str] | None:
        """(server, tool name on it) for `mcp__<server>__<tool>`; the longest matching server name wins
        (names may themselves contain `__`)."""
        matches = [server for server in self.servers
                   if name.startswith(f"{PREFIX}{server.name}{SEPARATOR}")
                   and len(name) > len(PREFIX) + len(server.name) + len(SEPARATOR)]
        if not matches:
            return None
        server = max(matches, key=lambda s: len(s.name))
        return server, name[len(PREFIX) + len(server.name) + len(SEPARATOR):]

    def check(self, name: str) -> str:
        """Why the run may not call `name` (the tool.denied reason), or "" when it may."""
        if not tool_allowed(self.patterns, name):
            return f"tool {name[:200]!r} is not allowed for this persona"
        resolved = self.resolve(name)
        if resolved is None:
            return f"no MCP server of this org provides {name[:200]!r}"
        server, tool = resolved
        if server.allowed_tools is not None and tool not in server.allowed_tools:
            return f"tool {tool[:128]!r} is not in the allowed_tools of MCP server {server.name!r}"
        return ""

    async def plan(self, name: str) -> ToolPlan:
        """Whether an allowed call waits for approval (server's `require_approval`), or fails already."""
        server, tool = self.resolve(name)
        if server.require_approval in ("always", "never"):
            return ToolPlan(confirm=server.require_approval == "always")
        try:
            found = await self._find(server, tool)
        except McpFailure as failure:
            return ToolPlan(failure=ToolFailed(failure.error_class, failure.message))
        if found is None:
            return ToolPlan(failure=ToolFailed("mcp.error", f"MCP server {server.name!r} offers no tool "
                                                              f"named {tool[:128]!r}"))
        return ToolPlan(confirm=not found.read_only)

    async def _find(self, server: ServerConfig, tool: str) -> McpTool | None:
        """The tool in the server's listing; a listing that lacks it is refreshed once (it may be stale)."""
        found = next((t for t in await self._listing(server) if t.name == tool), None)
        if found is None:
            self._forget(server)
            found = next((t for t in await self._listing(server) if t.name == tool), None)
        return found

    # --- calling --------------------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The result `{"content", "is_error"}`; ToolFailed (tool.timeout, mcp.*) when there is none."""
        from mcp_servers.client import tool_call  # the SDK loads when a run first needs it

        server, tool = self.resolve(name)
        try:
            return await tool_call(server, tool, arguments)
        except McpFailure as failure:
            log.info("MCP call %s failed: %s", name[:200], failure)
            raise ToolFailed(failure.error_class, failure.message) from None

    # --- listings ---------------------------------------------------------------------------------

    async def _listing(self, server: ServerConfig) -> list[McpTool]:
        """This execution's listing of `server`, else a fresh cached one, else asked now (McpFailure)."""
        from mcp_servers.client import tools_list  # the SDK loads when a run first needs it

        if server.id in self._listed:
            return self._listed[server.id]
        cached = _listings.get(server.id)
        if cached is not None and cached[0] > time.monotonic() and cached[1] == server.version:
            tools = cached[2]
        else:
            tools = await tools_list(server)
            _listings[server.id] = (time.monotonic() + LISTING_TTL_SECONDS, server.version, tools)
        self._listed[server.id] = tools
        return tools

    def _forget(self, server: ServerConfig) -> None:
        self._listed.pop(server.id, None)
        _listings.pop(server.id, None)
