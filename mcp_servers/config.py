"""Plain shapes shared by the API, the runner and the SDK client (importable without loading the SDK)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arkloop.text import text_clean

MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class ServerConfig:
    """What a listing or a call needs of a registered server (plain data: usable off the ORM's thread)."""

    id: str
    name: str
    url: str
    headers: dict[str, str] = field(repr=False)
    allowed_tools: list[str] | None = None
    require_approval: str = "unless_read_only"
    timeout_seconds: int = 30
    version: str = ""   # changes on every edit: a listing cached for an older version is not used
    problem: str = ""   # why the server cannot be used at all (its headers cannot be decrypted)


@dataclass(frozen=True)
class McpTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema,
                "read_only": self.read_only}


class McpFailure(Exception):
    """A listing or call that failed; `error_class` is mcp.unavailable, tool.timeout or mcp.error.

    The message names the server, never its URL or headers, and is safe to put in an event.
    """

    def __init__(self, error_class: str, message: str) -> None:
        self.error_class = error_class
        self.message = text_clean(message[:MAX_MESSAGE_CHARS])
        super().__init__(f"{error_class}: {self.message}")
