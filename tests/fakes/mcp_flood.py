"""A hostile MCP server for the tests: raw HTTP/1.1 speaking just enough MCP streamable HTTP (the
legacy `initialize` handshake, JSON answers) to get a session up, then floods its answers.

The URL's last path segment picks what it floods (`FloodServer.url(mode)`):

- `length`  — `tools/call` is answered with a JSON body of `total` bytes announced by Content-Length;
- `chunked` — `tools/call` is answered with chunks of JSON that stop only at `total` bytes;
- `sse`     — `tools/call` is answered with an SSE stream of notifications until `total` bytes;
- `gzip`    — `tools/call` is answered with a small result, gzip-compressed whatever was asked for;
- `pages`   — `tools/list` is answered with pages of one tool with a PAGE_BYTES description each,
  every page naming a next one (up to `total` bytes in all); `tools/call` answers a small result.

Everything else (and every mode's flood once it is over) is small. The server counts the flood
bytes it managed to write per mode (`sent[mode]`, what the kernel accepted), whether the client
went away before the end (`cut[mode]`), and how many floods it started (`floods[mode]`: calls
answered, or listings started at their first page). Each flood stops at `total` bytes, so a client without a cap
reads them all and nothing runs away. One request per connection (`Connection: close`).
"""
from __future__ import annotations

import contextlib
import gzip
import json
import socket
import socketserver
import threading
from collections import defaultdict
from typing import Any

CHUNK = 64 * 1024
PAGE_BYTES = 3 * 1024 * 1024
SEND_BUFFER = 64 * 1024  # kept small so that bytes "written" are close to bytes the client read


class FloodServer:
    def __init__(self, total: int = 64 * 1024 * 1024) -> None:
        self.total = total
        self.sent: dict[str, int] = defaultdict(int)
        self.cut: dict[str, bool] = defaultdict(bool)
        self.floods: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
                with contextlib.suppress(OSError):
                    owner.answer(self.rfile, self.connection)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/mcp/{mode}"

    def __enter__(self) -> FloodServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # One request.

    def answer(self, rfile: Any, connection: socket.socket) -> None:
        method, path, _ = rfile.readline().decode("latin-1").split(" ", 2)
        headers = {}
        while (line := rfile.readline().decode("latin-1").strip()):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = json.loads(rfile.read(int(headers.get("content-length", 0))) or b"null")
        mode = path.rsplit("/", 1)[-1]
        if method != "POST":
            connection.sendall(_head("405 Method Not Allowed", content_length=0))
        elif "id" not in body:  # a notification
            connection.sendall(_head("202 Accepted", content_length=0))
        elif body["method"] == "initialize":
            _json(connection, body["id"], {"protocolVersion": body["params"]["protocolVersion"],
                                           "capabilities": {"tools": {}},
                                           "serverInfo": {"name": "flood", "version": "1"}})
        elif body["method"] == "tools/list" and mode == "pages":
            cursor = (body.get("params") or {}).get("cursor")
            self.flood(connection, mode, _pages(body["id"], cursor, self.total), first=cursor is None)
        elif body["method"] == "tools/list":
            _json(connection, body["id"], {"tools": [{"name": "flood", "inputSchema": {"type": "object"},
                                                      "annotations": {"readOnlyHint": True}}]})
        elif body["method"] == "tools/call" and mode == "gzip":
            self.flood(connection, mode, _gzipped(body["id"]))
        elif body["method"] == "tools/call" and mode in FLOODS:
            self.flood(connection, mode, FLOODS[mode](body["id"], self.total))
        elif body["method"] == "tools/call":
            _json(connection, body["id"], {"content": [{"type": "text", "text": "small"}], "isError": False})
        else:  # server/discover and anything else: not offered, so the client falls back to `initialize`
            _json(connection, body["id"], None, error={"code": -32601, "message": "Method not found"})

    def flood(self, connection: socket.socket, mode: str, parts: Any, *, first: bool = True) -> None:
        with self.lock:
            self.floods[mode] += first
        try:
            for part in parts:
                connection.sendall(part)
                with self.lock:
                    self.sent[mode] += len(part)
        except OSError:
            with self.lock:
                self.cut[mode] = True


def _head(status: str, *, content_type: str = "application/json", content_length: int | None = None,
          chunked: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}", "Connection: close"]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _json(connection: socket.socket, request_id: Any, result: Any, *, error: dict | None = None) -> None:
    message = {"jsonrpc": "2.0", "id": request_id, **({"error": error} if error else {"result": result})}
    body = json.dumps(message).encode()
    connection.sendall(_head("200 OK", content_length=len(body)) + body)


def _text_result(request_id: Any, size: int) -> tuple[bytes, bytes, int]:
    """The start and end of a text result whose text is `size` bytes of padding between them."""
    start = json.dumps({"jsonrpc": "2.0", "id": request_id, "result": {"isError": False, "content": [
        {"type": "text", "text": "<<>>"}]}}).encode()
    head, tail = start.split(b"<<>>")
    return head, tail, size - len(head) - len(tail)


def _padding(size: int):
    while size > 0:
        yield b"x" * min(CHUNK, size)
        size -= CHUNK


def _length(request_id: Any, total: int):
    head, tail, padding = _text_result(request_id, total)
    yield _head("200 OK", content_length=total) + head
    yield from _padding(padding)
    yield tail


def _chunked(request_id: Any, total: int):
    head, tail, padding = _text_result(request_id, total)
    yield _head("200 OK", chunked=True)
    for part in (head, *_padding(padding), tail):
        yield b"%x\r\n%s\r\n" % (len(part), part)
    yield b"0\r\n\r\n"


def _sse(request_id: Any, total: int):
    yield _head("200 OK", content_type="text/event-stream", chunked=True)
    for number in range(total // CHUNK):
        note = {"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": "flood", "progress": number, "message": "x" * (CHUNK - 200)}}
        event = b"event: message\ndata: %s\n\n" % json.dumps(note).encode()
        yield b"%x\r\n%s\r\n" % (len(event), event)
    yield b"0\r\n\r\n"


def _gzipped(request_id: Any):
    head, tail, _ = _text_result(request_id, 0)
    body = gzip.compress(head + b"x" * 1000 + tail)
    yield _head("200 OK", content_length=len(body)).replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n") + body


def _pages(request_id: Any, cursor: str | None, total: int):
    page = int(cursor or 0)
    tool = {"name": f"tool{page}", "description": "x" * PAGE_BYTES, "inputSchema": {"type": "object"}}
    more = (page + 2) * PAGE_BYTES <= total
    body = json.dumps({"jsonrpc": "2.0", "id": request_id,
                       "result": {"tools": [tool], **({"nextCursor": str(page + 1)} if more else {})}}).encode()
    yield _head("200 OK", content_length=len(body))
    for start in range(0, len(body), CHUNK):
        yield body[start:start + CHUNK]


FLOODS = {"length": _length, "chunked": _chunked, "sse": _sse}
