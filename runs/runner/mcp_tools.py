"""The MCP tools of one run: its org's servers, offered as `mcp__<server>__<tool>`.

- Offering: the servers the persona's `tools` could reach are listed at once (in parallel, each
  within its own timeout; cached per process, see mcp_listings) before the first turn of an
  execution; a server that cannot be listed offers nothing for the rest of this execution, the
  others are unaffected. Tools whose full name a provider would refuse (not
  `[A-Za-z0-9_-]{1,64}`) are not offered.
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
from typing import Any

from mcp_servers.config import McpFailure, McpTool, ServerConfig
from personas.tool_patterns import tool_allowed
from runs.runner.mcp_listings import listing_fetch
from runs.runner.providers.base import ToolSpec
from runs.runner.tools import ToolFailed, ToolPlan

log = logging.getLogger("runs.runner")
PREFIX = "mcp__"
SEPARATOR = "__"
OFFERABLE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")  # what OpenAI and Anthropic accept as a tool name


def is_mcp_tool(name: str) -> bool:
    return name.startswith(PREFIX)


class McpTools:
    def __init__(self, *, servers: list[ServerConfig], patterns: list[str]) -> None:
        self.servers = servers
        self.patterns = patterns
        self._listed: dict[str, list[McpTool] | McpFailure] = {}  # this execution's listings

    # --- offering -----------------------------------------------------------------------------

    async def specs(self) -> list[ToolSpec]:
        """The MCP tools to offer the model this turn (listing each reachable server once)."""
        servers = [server for server in self.servers if self._reachable_by_persona(server)]
        listings = await asyncio.gather(*(self._offered(server) for server in servers), return_exceptions=True)
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
        """The tool in the server's listing (a failed listing is tried again: the user is about to be
        asked, or the call reported unavailable); a listing that lacks the tool is refreshed once."""
        listed = self._listed.get(server.id)
        tools = listed if isinstance(listed, list) else await self._remember(server, retry_failure=True)
        found = next((t for t in tools if t.name == tool), None)
        if found is None:
            found = next((t for t in await self._remember(server, fresh=True) if t.name == tool), None)
        return found

    # --- calling --------------------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The result `{"content", "is_error"}`; ToolFailed (tool.timeout, mcp.*) when there is none."""
        from mcp_servers.client import mcp_tool_call  # the SDK loads when a run first needs it

        server, tool = self.resolve(name)
        try:
            return await mcp_tool_call(server, tool, arguments)
        except McpFailure as failure:
            log.info("MCP call %s failed: %s", name[:200], failure)
            raise ToolFailed(failure.error_class, failure.message) from None

    # --- listings ---------------------------------------------------------------------------------

    async def _offered(self, server: ServerConfig) -> list[McpTool]:
        """The listing to offer: this execution's, else the process's; a failure stays for the
        execution (a dead server is not waited for again at every turn)."""
        listed = self._listed.get(server.id)
        if isinstance(listed, McpFailure):
            raise listed
        if listed is not None:
            return listed
        try:
            return await self._remember(server)
        except McpFailure as failure:
            self._listed[server.id] = failure
            raise

    async def _remember(self, server: ServerConfig, **cache: bool) -> list[McpTool]:
        tools = await listing_fetch(server, **cache)
        self._listed[server.id] = tools
        return tools
