"""Every tool one run may call — the built-in ones and its org's MCP servers' — behind one interface.

The agent loop asks, per call: `check` (may it run at all? else tool.denied), `plan` (wait for the
user's approval first? already known to fail?), then awaits `run`: built-in tools on their thread
pool (tools.tool_call), MCP tools over the network within their server's timeout. Either way a
cancel, or the run's timeout, interrupts the await at once.
"""
from __future__ import annotations

from typing import Any

from mcp_servers.config import ServerConfig
from personas.tool_patterns import tool_allowed
from runs.runner.mcp_tools import McpTools, is_mcp_tool
from runs.runner.providers.base import ToolSpec
from runs.runner.tools import ToolPlan, tool_call, tool_specs


class Toolbox:
    def __init__(self, *, tools: list[str], confirm_tools: list[str], mcp_servers: list[ServerConfig]) -> None:
        self.tools = tools
        self.confirm_tools = confirm_tools
        self.mcp = McpTools(servers=mcp_servers, patterns=tools)

    async def specs(self) -> list[ToolSpec]:
        """What to offer the model: the persona's built-in tools, then the MCP tools it may call."""
        return tool_specs(self.tools) + await self.mcp.specs()

    def check(self, name: str) -> str:
        """Why `name` may not be called (the tool.denied reason), or ""."""
        if is_mcp_tool(name):
            return self.mcp.check(name)
        return "" if tool_allowed(self.tools, name) else f"tool {name!r} is not allowed for this persona"

    async def plan(self, name: str) -> ToolPlan:
        """For an allowed call: the persona's `confirm_tools`, and for MCP tools their server's rule."""
        confirm = tool_allowed(self.confirm_tools, name)
        if not is_mcp_tool(name):
            return ToolPlan(confirm=confirm)
        plan = await self.mcp.plan(name)
        return ToolPlan(confirm=confirm or plan.confirm, failure=plan.failure)

    async def run(self, name: str, arguments: dict[str, Any]) -> Any:
        """The tool's result; ToolFailed (with its error class) for any failure."""
        if is_mcp_tool(name):
            return await self.mcp.call(name, arguments)
        return await tool_call(name, arguments)
