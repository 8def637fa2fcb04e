"""A real HTTP endpoint for webhook deliveries: tests script its answers and read what arrived."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.server import LocalServer
from tests.runner.processes import wait_until


@dataclass
class Answer:
    """What the receiver answers: a status, headers, and optionally a pause until `release` is set."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    release: threading.Event | None = None
    hold_seconds: float = 30.0  # the longest a held answer waits for `release`
    raw: bytes | None = None  # sent instead of an HTTP answer (garbage, say)
    endless: bool = False  # a body that never ends (until the client hangs up)


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    answered: int | None = None  # the status sent back (None while held, or when the client left)
    arrived: float = field(default_factory=time.time)  # when its body was read (epoch seconds)

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class WebhookReceiver(LocalServer):
    """Answers queued `answers` in order, then `default` (200). Use as a context manager."""

    def __init__(self, default: Answer | None = None) -> None:
        self.answers: list[Answer] = []
        self.default = default or Answer()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._serve()

    @property
    def url(self) -> str:
        return f"{self.root}/hook"

    def __exit__(self, *exc: object) -> None:
        for answer in [*self.answers, self.default]:
            if answer.release is not None:
                answer.release.set()
        super().__exit__(*exc)

    def at(self, path: str) -> list[Received]:
        return [r for r in list(self.received) if r.path == path]

    def wait_for(self, count: int, *, what: str = "deliveries", timeout: float = 30.0) -> list[Received]:
        wait_until(lambda: len(self.received) >= count, what=f"{count} {what}", timeout=timeout)
        return list(self.received)

    def _next_answer(self) -> Answer:
        with self._lock:
            return self.answers.pop(0) if self.answers else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                item = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                receiver.received.append(item)
                answer = receiver._next_answer()
                if answer.release is not None:
                    answer.release.wait(answer.hold_seconds)
                if answer.raw is not None or answer.endless:
                    return self._hostile(answer)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                try:
                    self.wfile.write(b"ok")
                    item.answered = answer.status
                except OSError:  # the sender gave up (timeout) or died
                    pass

            def _hostile(self, answer: Answer) -> None:
                self.close_connection = True
                if answer.raw is not None:
                    self.wfile.write(answer.raw)
                    return
                self.send_response(answer.status)
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for _ in range(100_000):  # 100 MB at most, should the client never hang up
                        self.wfile.write(b"x" * 1024)
                except OSError:
                    pass


        return Handler
