"""A tiny threaded HTTP server for fake model providers: real sockets, real streaming responses."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 (a free port), running while used as a context manager."""

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def _serve(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class FakeProvider(LocalServer):
    """Base of the fakes. Tests queue `turns` (what the model answers, in order) and read `requests`.

    A turn: {"text": str, "tool_calls": [{"id", "name", "arguments"}], "usage": {"input_tokens",
    "output_tokens", "cached_input_tokens"}, "chunk_delay": seconds}. With no turn queued the
    model says "Hello from the fake model.". Failure modes: `fail_statuses` (answered first, one
    per request, e.g. [429]) and `always_status` (every request, e.g. 500).
    """

    path = "/"

    def __init__(self) -> None:
        self.turns: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_statuses: list[int] = []
        self.always_status: int | None = None
        self._serve()

    def next_turn(self) -> dict[str, Any]:
        turn = self.turns.pop(0) if self.turns else {"text": "Hello from the fake model."}
        turn.setdefault("usage", {"input_tokens": 10, "output_tokens": 5, "cached_input_tokens": 0})
        return turn

    def failure(self) -> int | None:
        if self.always_status is not None:
            return self.always_status
        return self.fail_statuses.pop(0) if self.fail_statuses else None

    # --- implemented by each API's fake ---
    def error_body(self, status: int) -> dict[str, Any]:
        raise NotImplementedError

    def stream(self, request: dict[str, Any], turn: dict[str, Any]):
        """Yield the SSE frames (str) of one streamed answer."""
        raise NotImplementedError

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes, as streams may

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                status = fake.failure() if self.path.rstrip("/").endswith(fake.path) else 404
                if status is not None:
                    return self._json(status, fake.error_body(status))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                turn = fake.next_turn()
                try:
                    for frame in fake.stream(body, turn):
                        self.wfile.write(frame.encode())
                        self.wfile.flush()
                        if turn.get("chunk_delay"):
                            time.sleep(turn["chunk_delay"])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up mid-stream (a cancelled or timed-out run): as a real API sees it

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def split_text(text: str, size: int = 4) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]
