"""Tool names and patterns: `mcp__<server>__<tool>` and the persona patterns that allow them."""
from __future__ import annotations

import pytest

from mcp_servers.config import ServerConfig
from personas.builtins import SpecError, parse_persona_spec
from personas.tool_patterns import pattern_covered, tool_allowed
from runs.runner.mcp_tools import McpTools


def server(name: str, **fields) -> ServerConfig:
    return ServerConfig(id=name, name=name, url="https://tools.example.com/mcp", headers={}, **fields)


@pytest.mark.parametrize("patterns,name,allowed", [
    (["mcp__*"], "mcp__calc__add", True), (["mcp__calc__*"], "mcp__calc__add", True),
    (["mcp__calc__*"], "mcp__calcx__add", False), (["mcp__calc__add"], "mcp__calc__add", True),
    (["mcp__calc__add"], "mcp__calc__addx", False), (["echo"], "mcp__calc__add", False), (["*"], "anything", True),
    (["mcp_*"], "mcp_x", True), ([], "echo", False),
])
def test_patterns_match_exactly_or_by_a_trailing_star(patterns, name, allowed):
    assert tool_allowed(patterns, name) is allowed


def test_confirm_tools_must_be_covered_by_tools(tmp_path):
    assert pattern_covered(["mcp__*"], "mcp__calc__*") and pattern_covered(["mcp__*"], "mcp__calc__add")
    assert not pattern_covered(["mcp__calc__*"], "mcp__*") and not pattern_covered(["echo"], "calculator")
    spec = tmp_path / "p.yaml"
    spec.write_text('key: p\nversion: 1\ntitle: P\ntools: [echo, "mcp__*"]\nconfirm_tools: ["mcp__github__*"]\n')
    assert parse_persona_spec(spec).fields["confirm_tools"] == ["mcp__github__*"]
    spec.write_text('key: p\nversion: 1\ntitle: P\ntools: ["mcp__calc__*"]\nconfirm_tools: ["mcp__*"]\n')
    with pytest.raises(SpecError, match="subset"):
        parse_persona_spec(spec)


def test_a_name_resolves_to_the_longest_server_name_it_starts_with():
    tools = McpTools(servers=[server("a"), server("a__b"), server("calc")], patterns=["mcp__*"])
    assert [(s.name, tool) for s, tool in [tools.resolve("mcp__a__b__c"), tools.resolve("mcp__a__x")]] == [
        ("a__b", "c"), ("a", "x")]
    assert tools.resolve("mcp__calc__") is None and tools.resolve("mcp__nope__add") is None
    assert tools.resolve("mcp__calc__add__more")[1] == "add__more"


def test_permission_needs_the_persona_a_server_and_its_allowed_tools():
    tools = McpTools(servers=[server("calc", allowed_tools=["add"])], patterns=["mcp__calc__*"])
    assert tools.check("mcp__calc__add") == ""
    assert "allowed_tools" in tools.check("mcp__calc__sub")
    assert "not allowed for this persona" in tools.check("mcp__other__add")
    assert "no MCP server" in McpTools(servers=[], patterns=["mcp__*"]).check("mcp__calc__add")
