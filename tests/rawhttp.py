"""HTTP/1.1 over a raw socket, for the cases a client library hides: chunked bodies, bodies that
never end, hanging up at a chosen moment, thousands of simultaneous connects."""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass

TIMEOUT = 20.0  # a hang guard, not a speed assertion


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # names lowercased
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def connect(url: str) -> socket.socket:
    return socket.create_connection(address(url), timeout=TIMEOUT)


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    """One chunk of a `Transfer-Encoding: chunked` body (b"" gives the terminating chunk)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """A whole request with a Content-Length body."""
    if body or method in ("POST", "PUT", "PATCH"):
        headers = {**headers, "Content-Length": str(len(body))}
    return head(method, path, headers) + body


def _read_exactly(sock: socket.socket, buffered: bytes, size: int) -> tuple[bytes, bytes]:
    while len(buffered) < size:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection mid-response")
        buffered += data
    return buffered[:size], buffered[size:]


def _read_line(sock: socket.socket, buffered: bytes) -> tuple[bytes, bytes]:
    while b"\r\n" not in buffered:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection mid-response")
        buffered += data
    line, _, rest = buffered.partition(b"\r\n")
    return line, rest


def _read_chunked(sock: socket.socket, buffered: bytes) -> bytes:
    body = b""
    while True:
        size_line, buffered = _read_line(sock, buffered)
        size = int(size_line.split(b";")[0], 16)
        data, buffered = _read_exactly(sock, buffered, size + 2)
        if size == 0:
            return body
        body += data[:-2]


def read_response(sock: socket.socket) -> Response:
    """The next response on `sock` (Content-Length, chunked, or until EOF); skips 1xx answers."""
    buffered = b""
    while True:
        while b"\r\n\r\n" not in buffered:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"the server closed the connection before answering: {buffered!r}")
            buffered += data
        head_bytes, _, buffered = buffered.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        pairs = (line.partition(":") for line in lines[1:])
        headers = {name.strip().lower(): value.strip() for name, _, value in pairs}
        if status >= 200:
            break
    if "content-length" in headers:
        body, _ = _read_exactly(sock, buffered, int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = _read_chunked(sock, buffered)
    else:
        body = buffered
        while data := sock.recv(65536):
            body += data
    return Response(status, headers, body)


def exchange(url: str, raw: bytes) -> Response:
    """Send `raw` on a new connection and read one response."""
    with connect(url) as sock:
        sock.sendall(raw)
        return read_response(sock)
