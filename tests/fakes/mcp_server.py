"""A real MCP server for the tests, built with the `mcp` SDK's own MCPServer, over streamable HTTP.

Run as a process: `python -m tests.fakes.mcp_server PORT TOKEN [--stateless]`. Every MCP request
must carry `Authorization: Bearer TOKEN` (else 401), so the tests see that registered headers are
sent. Tools:

- `add(a, b)`        read-only (readOnlyHint): a + b
- `write_note(text)` not read-only: "saved: <text>"
- `sleep(seconds, tag)` read-only: sleeps, then "slept"; an interrupted sleep is recorded
- `fail(reason)`     read-only: raises, which the SDK answers as a result with isError
- `odd_text()`       read-only: text with a NUL in it (a lone surrogate cannot even cross the SDK)

`GET /stats` (no token) → {"calls": [[tool, arguments], …], "interrupted": [[tool, arguments], …]}.
`McpServerProcess` starts it for a test module and reads its stats.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import urllib.request
from typing import Any

from tests.servers import ROOT, free_port, wait_for_port

TOKEN = "mcp-test-token-3f1c9e"


def build_app(token: str, *, stateless: bool) -> Any:
    from mcp.server.mcpserver import MCPServer
    from mcp_types import ToolAnnotations
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    server = MCPServer("arkloop-test-tools")
    calls: list[list[Any]] = []
    interrupted: list[list[Any]] = []
    read_only = ToolAnnotations(read_only_hint=True)

    @server.tool(annotations=read_only, description="Add two numbers.")
    def add(a: float, b: float) -> float:
        calls.append(["add", {"a": a, "b": b}])
        return a + b

    @server.tool(description="Save a note (changes things: not read-only).")
    def write_note(text: str) -> str:
        calls.append(["write_note", {"text": text}])
        return f"saved: {text}"

    @server.tool(annotations=read_only, description="Sleep for a while.")
    async def sleep(seconds: float, tag: str = "") -> str:
        calls.append(["sleep", {"seconds": seconds, "tag": tag}])
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            interrupted.append(["sleep", {"seconds": seconds, "tag": tag}])
            raise
        return "slept"

    @server.tool(annotations=read_only, description="Always fails.")
    def fail(reason: str = "") -> str:
        calls.append(["fail", {"reason": reason}])
        raise ValueError(f"fail was asked to fail: {reason}")

    @server.tool(annotations=read_only, description="Text that PostgreSQL cannot store as it is.")
    def odd_text() -> str:
        calls.append(["odd_text", {}])
        return "nul:\x00 end"

    @server.custom_route("/stats", methods=["GET"])
    async def stats(request: Request) -> JSONResponse:
        return JSONResponse({"calls": calls, "interrupted": interrupted})

    app = server.streamable_http_app(stateless_http=stateless, json_response=stateless)
    return _require_token(app, token)


def _require_token(app: Any, token: str) -> Any:
    """ASGI middleware: the MCP endpoint answers 401 without `Authorization: Bearer <token>`."""
    from starlette.responses import JSONResponse

    async def guarded(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/mcp"):
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != f"Bearer {token}".encode():
                await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded


class McpServerProcess:
    """The server above as a subprocess on a free port; `.url` is its MCP endpoint."""

    def __init__(self, *, stateless: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.stateless = stateless
        self.log_file = tempfile.NamedTemporaryFile(prefix="arkloop-mcp-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> McpServerProcess:
        command = [sys.executable, "-m", "tests.fakes.mcp_server", str(self.port), TOKEN]
        self.process = subprocess.Popen([*command, *(["--stateless"] if self.stateless else [])], cwd=ROOT,
                                        stdout=self.log_file, stderr=subprocess.STDOUT)
        wait_for_port(self.port, process=self.process)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self.log_file.close()

    def stats(self) -> dict[str, list]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as response:
            return json.load(response)

    def calls(self, tool: str, **arguments: Any) -> int:
        """How many calls of `tool` had (at least) these arguments."""
        return sum(name == tool and arguments.items() <= args.items() for name, args in self.stats()["calls"])

    def interrupted(self, tool: str, **arguments: Any) -> int:
        return sum(name == tool and arguments.items() <= args.items() for name, args in self.stats()["interrupted"])


if __name__ == "__main__":
    import uvicorn

    port, token = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(build_app(token, stateless="--stateless" in sys.argv), host="127.0.0.1", port=port,
                log_level="warning")
