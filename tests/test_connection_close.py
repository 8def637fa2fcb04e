"""A finished event stream ends its TCP connection (clients that read until EOF must finish)."""
import socket

import pytest

from arkloop import connection_close


@pytest.fixture
def cancelled_run(alice, transactional_db):
    thread = alice.client.post("/v1/threads", {"title": "eof"}).json()
    alice.client.post(f"/v1/threads/{thread['id']}/messages", {"content": "hello"})
    run = alice.client.post(f"/v1/threads/{thread['id']}/runs", {}).json()
    assert alice.client.post(f"/v1/runs/{run['run_id']}:cancel").status_code == 200  # no runner: at once
    return run["run_id"]


def read_until_eof(url: str, path: str, key: str) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):  # a socket.timeout here means the server kept it open
            received += chunk
    return received


def test_stream_of_a_finished_run_closes_the_connection(live_server, alice, cancelled_run):
    raw = read_until_eof(live_server.url, f"/v1/runs/{cancelled_run}/events", alice.key)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"connection: close" in head.lower()
    assert b"event: run.started" in body and b"event: run.cancelled" in body


def test_ordinary_responses_keep_the_connection_alive(live_server, alice, transactional_db):
    host, port = live_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        request = f"GET /v1/threads HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {alice.key}\r\n\r\n".encode()
        for _ in range(2):  # two requests on one connection: keep-alive is untouched
            sock.sendall(request)
            response = sock.recv(65536)
            assert response.startswith(b"HTTP/1.1 200")


def test_startup_check_refuses_daphne_or_twisted_code_it_was_not_written_for(monkeypatch):
    from daphne.http_protocol import WebRequest
    from twisted.web import http

    connection_close._check(WebRequest, http)  # the pinned versions pass (patched or not)
    monkeypatch.setitem(connection_close._EXPECTED_SOURCES, "HTTPChannel.requestDone", "0" * 64)
    with pytest.raises(RuntimeError, match="HTTPChannel.requestDone"):
        connection_close._check(WebRequest, http)
