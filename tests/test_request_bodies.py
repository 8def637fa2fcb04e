"""The body limit holds however the body arrives (SPEC §1), over raw sockets to a real Daphne.

The server stops at ARKLOOP_MAX_BODY_BYTES (1 MiB here) and answers 413 without waiting for the
rest; a chunked body within the limit is parsed like any other.
"""
from __future__ import annotations

import asyncio
import json
import threading

import pytest

from arkloop import daphne_body_limit
from arkloop.body import BodyLimit
from tests.rawhttp import chunk, connect, exchange, head, read_response, request
from threads.models import Thread

LIMIT = 1024 * 1024


@pytest.fixture
def server(live_server, transactional_db):
    return live_server


def json_headers(actor=None, **extra: str) -> dict[str, str]:
    auth = {"Authorization": f"Bearer {actor.key}"} if actor else {}
    return {**auth, "Content-Type": "application/json", **extra}


def assert_too_large(response) -> None:
    assert response.status == 413, response.body
    body = response.json()
    assert body["code"] == "validation.body_too_large" and body["details"] == {"max_bytes": LIMIT}
    assert body["trace_id"] == response.headers["x-trace-id"]


def padded_title_body(size: int) -> bytes:
    """A valid thread body of exactly `size` bytes (JSON padded with trailing spaces)."""
    body = json.dumps({"title": "padded"}).encode()
    return body + b" " * (size - len(body))


def test_a_chunked_body_is_parsed_like_any_other(server, alice):
    body = b'{"title": "chunked-title"}'
    raw = head("POST", "/v1/threads", json_headers(alice, **{"Transfer-Encoding": "chunked"}))
    response = exchange(server.url, raw + chunk(body[:5]) + chunk(body[5:12]) + chunk(body[12:]) + chunk(b""))
    assert response.status == 201, response.body
    assert response.json()["title"] == "chunked-title"
    assert Thread.objects.get().title == "chunked-title"


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_of_exactly_the_limit_is_accepted(server, alice, chunked):
    body = padded_title_body(LIMIT)
    if chunked:
        raw = head("POST", "/v1/threads", json_headers(alice, **{"Transfer-Encoding": "chunked"}))
        raw += b"".join(chunk(body[i:i + 65536]) for i in range(0, LIMIT, 65536)) + chunk(b"")
    else:
        raw = request("POST", "/v1/threads", json_headers(alice), body)
    assert exchange(server.url, raw).status == 201


def test_a_chunked_body_over_the_limit_is_413_before_it_ends(server, alice):
    """The body never ends: only a server that stops at the limit can answer."""
    with connect(server.url) as sock:
        sock.sendall(head("POST", "/v1/threads", json_headers(alice, **{"Transfer-Encoding": "chunked"})))
        for _ in range(LIMIT // 65536 + 1):
            sock.sendall(chunk(b" " * 65536))
        assert_too_large(read_response(sock))
    assert not Thread.objects.exists()


def test_a_declared_length_over_the_limit_is_413_before_any_body_is_sent(server):
    """Unauthenticated, 10 GiB announced with `Expect: 100-continue`: the answer is 413, not 100."""
    with connect(server.url) as sock:
        sock.sendall(head("POST", "/v1/threads", json_headers(**{"Content-Length": str(10 * 2**30),
                                                                  "Expect": "100-continue"})))
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 413"), first


def test_the_413_carries_the_trace_id_of_the_requests_traceparent(server):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    raw = head("POST", "/v1/threads", json_headers(**{"Content-Length": str(2 * LIMIT),
                                                      "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}))
    response = exchange(server.url, raw)
    assert_too_large(response)
    assert response.headers["x-trace-id"] == trace_id


def test_a_client_that_sends_its_whole_body_first_still_reads_the_413(server, alice):
    body = padded_title_body(3 * LIMIT)
    with connect(server.url) as sock:
        sender = threading.Thread(target=sock.sendall, args=(request("POST", "/v1/threads", json_headers(alice),
                                                                     body),), daemon=True)
        sender.start()
        assert_too_large(read_response(sock))
        sender.join(20)
    assert not Thread.objects.exists()


def test_startup_check_refuses_twisted_code_it_was_not_written_for(monkeypatch):
    from daphne.http_protocol import WebRequest
    from twisted.web import http

    daphne_body_limit._check_twisted(http, WebRequest)  # the pinned Twisted passes
    monkeypatch.setitem(daphne_body_limit._EXPECTED_SOURCES, "Request.gotLength", "0" * 64)
    with pytest.raises(RuntimeError, match="Request.gotLength"):
        daphne_body_limit._check_twisted(http, WebRequest)


class _Recorder:
    def __init__(self) -> None:
        self.scope: dict | None = None
        self.body = b""

    async def __call__(self, scope, receive, send) -> None:
        self.scope, self.body = scope, (await receive())["body"]


def _drive(app, messages: list[dict]) -> list[dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/threads", "headers": [(b"transfer-encoding", b"chunked")]}
    asyncio.run(app(scope, receive, send))
    return sent


def test_the_asgi_layer_holds_the_limit_under_any_server(settings):
    """Without Daphne's early stop (another ASGI server), the application layer counts as bytes arrive."""
    settings.ARKLOOP_MAX_BODY_BYTES = 10
    inner = _Recorder()
    sent = _drive(BodyLimit(inner), [{"type": "http.request", "body": b"123456", "more_body": True},
                                     {"type": "http.request", "body": b"78901", "more_body": True}])
    assert sent[0]["status"] == 413 and inner.scope is None
    fits = _drive(BodyLimit(inner), [{"type": "http.request", "body": b"12345", "more_body": True},
                                     {"type": "http.request", "body": b"67890", "more_body": False}])
    assert fits == [] and inner.body == b"1234567890"
    assert dict(inner.scope["headers"]) == {b"content-length": b"10"}
