"""A persona's `tools` and `confirm_tools` name tools exactly or by a pattern ending in `*`.

`mcp__*` is every MCP tool, `mcp__github__*` every tool of the org's MCP server named `github`,
`echo` the built-in tool `echo` alone. Only a trailing `*` is special: it matches any rest.
"""
from __future__ import annotations

from collections.abc import Iterable


def tool_allowed(patterns: Iterable[str], name: str) -> bool:
    """`name` is one of `patterns`, or starts with the part of one before its trailing `*`."""
    return any(name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1])) for pattern in patterns)


def pattern_covered(patterns: Iterable[str], entry: str) -> bool:
    """Every name `entry` (itself a name or a pattern) matches is also matched by one of `patterns`."""
    if not entry.endswith("*"):
        return tool_allowed(patterns, entry)
    return any(pattern.endswith("*") and entry[:-1].startswith(pattern[:-1]) for pattern in patterns)
