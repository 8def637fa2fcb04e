"""Cheap HTTP/1.1 clients for the benchmarks: keep-alive JSON requests and SSE followers.

The client shares the machine's cores with the server it measures, so it must cost little per
request and per event: no HTTP library, no task per follower. `Api` is one keep-alive connection
on asyncio streams; `Follower` is an `asyncio.Protocol` (a callback per TCP read, no task) that
de-chunks the response and records, per event, its seq, type and the moment the read that
completed it arrived. Both speak HTTP/1.1 as browsers and curl do, so the server does its real
work (chunked framing, `Connection: close` at the end of a stream).
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

HOST = "127.0.0.1"
FRAME = re.compile(rb"^id: (\d+)\nevent: ([^\n]+)$", re.M)
TERMINAL = (b"run.completed", b"run.failed", b"run.cancelled")


class HttpError(Exception):
    pass


class Api:
    """One keep-alive HTTP/1.1 connection sending JSON requests one at a time."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.auth = f"Authorization: Bearer {key}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        """(status, parsed JSON body or None)."""
        status, content = await self.send(method, path, body)
        return status, json.loads(content) if content else None

    async def send(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        """(status, raw body); reconnects when the server closed the connection after a response."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n").encode()
        self.writer.write(head + self.auth + b"\r\n" + payload)
        status, headers = await self._head()
        content = await self._body(headers)
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, content

    async def _head(self) -> tuple[int, dict[bytes, bytes]]:
        line = await self.reader.readline()
        if not line:
            raise HttpError("connection closed before a response")
        status = int(line.split(b" ", 2)[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    async def _body(self, headers: dict[bytes, bytes]) -> bytes:
        if b"content-length" in headers:
            return await self.reader.readexactly(int(headers[b"content-length"]))
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readline()
            return b"".join(parts)
        return await self.reader.read()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class Follower(asyncio.Protocol):
    """One SSE stream of `GET /v1/runs/{run_id}/events`, read by callbacks.

    `seqs`, `types`, `times`: per event received, in order (`times` = time.time() of the read).
    `attached` resolves when an event with seq ≥ `attach_seq` arrived; `done` when the server
    closed the connection (after the terminal event, or on error).
    """

    def __init__(self, run_id: str, key: str, *, attach_seq: int = 1, after_seq: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self.request = (f"GET /v1/runs/{run_id}/events?after_seq={after_seq} HTTP/1.1\r\nHost: {HOST}\r\n"
                        f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n").encode()
        self.attach_seq = attach_seq
        self.attached: asyncio.Future = loop.create_future()
        self.done: asyncio.Future = loop.create_future()
        self.seqs: list[int] = []
        self.types: list[bytes] = []
        self.times: list[float] = []
        self.status = 0
        self.error = ""
        self.pings = 0
        self._raw = b""  # bytes not yet de-chunked
        self._text = b""  # de-chunked bytes not yet split into frames
        self._head_done = False
        self._chunked = False
        self._ended = False  # the terminating zero-size chunk arrived

    @classmethod
    async def open(cls, port: int, run_id: str, key: str, **kwargs: Any) -> Follower:
        loop = asyncio.get_running_loop()
        _, follower = await loop.create_connection(lambda: cls(run_id, key, **kwargs), HOST, port)
        return follower

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self._raw += data
        if not self._head_done and not self._read_head():
            return
        self._text += self._dechunk() if self._chunked else self._take_raw()
        end = self._text.rfind(b"\n\n")
        if end < 0:
            return
        frames, self._text = self._text[:end + 2], self._text[end + 2:]
        for match in FRAME.finditer(frames):
            self.seqs.append(int(match[1]))
            self.types.append(match[2])
            self.times.append(now)
        self.pings += frames.count(b": ping")
        if not self.attached.done() and self.seqs and self.seqs[-1] >= self.attach_seq:
            self.attached.set_result(now)

    def _read_head(self) -> bool:
        end = self._raw.find(b"\r\n\r\n")
        if end < 0:
            return False
        head, self._raw = self._raw[:end], self._raw[end + 4:]
        self.status = int(head.split(b" ", 2)[1])
        self._chunked = b"transfer-encoding: chunked" in head.lower()
        self._head_done = True
        if self.status != 200:
            self.error = f"status {self.status}: {self._raw[:200]!r}"
            self.transport.close()
            return False
        return True

    def _take_raw(self) -> bytes:
        data, self._raw = self._raw, b""
        return data

    def _dechunk(self) -> bytes:
        out, raw, pos = [], self._raw, 0
        while not self._ended:
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(raw[pos:eol].split(b";")[0], 16)
            if size == 0:
                self._ended = True
                pos = eol + 2
                break
            if len(raw) < eol + 2 + size + 2:
                break
            out.append(raw[eol + 2:eol + 2 + size])
            pos = eol + 2 + size + 2
        self._raw = raw[pos:]
        return b"".join(out)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.error:
            self.error = repr(exc)
        if not self.attached.done():
            self.attached.set_exception(HttpError(self.error or "closed before attaching"))
            self.attached.exception()  # retrieved: a follower that never attached is reported, not raised
        if not self.done.done():
            self.done.set_result(time.time())

    @property
    def complete(self) -> bool:
        """Closed by the server after a terminal event, with no error."""
        return self.done.done() and not self.error and bool(self.types) and self.types[-1] in TERMINAL

    def close(self) -> None:
        self.transport.close()


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """The events of an SSE body (`data:` lines), as the JSON objects the server sent."""
    return [json.loads(line[6:]) for line in body.split(b"\n") if line.startswith(b"data: ")]
