"""Direct writes (runs/stream/transport.py): under Daphne the hub writes a live stream's frames to
its socket itself. Over real HTTP to a real Daphne: what arrives must be exactly what the ASGI
path sends, also for a reader whose socket is full and for clients that vanish mid-write."""
from __future__ import annotations

import functools
import socket
import struct

import pytest

from runs.events import event_append
from runs.stream import transport
from tests.ops.scrape import scrape
from tests.rawhttp import TIMEOUT, address, exchange, head
from tests.runner.processes import wait_until
from tests.servers import DaphneServer
from tests.stream.conftest import append_deltas, finish, make_run

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test commits

TOKEN = "direct-writes-metrics-token"
DIRECT = "arkloop_sse_events_direct_total"


@pytest.fixture(scope="module")
def server(database_url):
    with DaphneServer(database_url=database_url, ARKLOOP_METRICS_TOKEN=TOKEN) as daphne:
        yield daphne


def metric(server: DaphneServer, name: str) -> float:
    return scrape(f"{server.url}/metrics", TOKEN).value(name)


def open_stream(server: DaphneServer, actor, run, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:  # before connect: the window the server may fill
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(TIMEOUT)
    sock.connect(address(server.url))
    sock.sendall(head("GET", f"/v1/runs/{run.id}/events", actor.auth))
    return sock


def read_until(sock: socket.socket, marker: bytes, received: bytes = b"") -> bytes:
    while marker not in received:
        assert not received.startswith(b"HTTP/1.1 4"), received
        data = sock.recv(65536)
        assert data, f"closed before {marker!r}"
        received += data
    return received


def read_to_eof(sock: socket.socket, received: bytes) -> bytes:
    while data := sock.recv(1 << 20):
        received += data
    return received


def dechunk(raw: bytes) -> tuple[bytes, list[bytes]]:
    """The response head, and each chunk of its body (strict: any framing error fails the test)."""
    head_bytes, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head_bytes.lower(), head_bytes
    chunks = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        assert rest[size:size + 2] == b"\r\n", f"chunk of {size} bytes not followed by CRLF"
        if size == 0:
            assert rest == b"\r\n", rest[:100]
            return head_bytes, chunks
        chunks.append(rest[:size])
        rest = rest[size + 2:]


def replay_body(server: DaphneServer, actor, run) -> bytes:
    """The same events through the ASGI path: a `follow=false` replay of the finished run."""
    response = exchange(server.url, head("GET", f"/v1/runs/{run.id}/events?follow=false", actor.auth))
    assert response.status == 200
    return response.body


@pytest.fixture
def listening(server, alice):
    """One event delivered live first: the hub of the server has its notification source running
    (a stream that opens while it connects is re-synchronised through its task, not written to)."""
    run = make_run(alice)
    sock = open_stream(server, alice, run)
    received = read_until(sock, b"event: run.started")
    finish(run)
    read_to_eof(sock, received)
    sock.close()


def test_live_events_are_written_by_the_hub_one_chunk_each_as_the_replay_sends_them(server, alice, listening):
    run = make_run(alice)
    sock = open_stream(server, alice, run)
    received = read_until(sock, b"event: run.started")  # replayed by the stream's task: now it is live
    # The hub's first news of a run may come after several events (SQLite polls every 50 ms):
    # it then reads from the announced one and the stream catches up on the rest from the log.
    # From the second news on it reads every new event, so the stream stays live.
    append_deltas(run, 1)
    received = read_until(sock, b'"seq":2,', received)
    direct_before = metric(server, DIRECT)
    append_deltas(run, 20, start=1)
    finish(run)
    with sock:
        head_bytes, chunks = dechunk(read_to_eof(sock, received))
    assert head_bytes.startswith(b"HTTP/1.1 200") and b"connection: close" in head_bytes.lower()
    live = [chunk for chunk in chunks if chunk and b"event: run.started" not in chunk]
    assert [chunk.count(b"\nevent: ") + chunk.startswith(b"event: ") for chunk in live] == [1] * 22  # one frame each
    assert b"".join(chunks) == replay_body(server, alice, run)
    assert metric(server, DIRECT) - direct_before == 21  # 20 deltas and run.completed, none through the task


def test_a_follower_that_stops_reading_gets_every_event_in_order_when_it_reads_again(server, alice, listening):
    run = make_run(alice)
    sock = open_stream(server, alice, run, rcvbuf=4096)
    received = read_until(sock, b"event: run.started")
    # ~6 MB while the client reads nothing: more than the kernel buffers of both sides hold, so
    # the direct writes fill the socket and the rest waits in Twisted's buffer.
    big = "x" * 100_000
    for index in range(60):
        event_append(run_id=run.id, type="message.delta", data={"content": f"{index}:{big}", "role": "assistant"})
    finish(run)
    with sock:
        _, chunks = dechunk(read_to_eof(sock, received))
    assert b"".join(chunks) == replay_body(server, alice, run)


def test_clients_that_vanish_mid_write_leave_no_stream_behind(server, alice, listening):
    run = make_run(alice)
    open_before = metric(server, "arkloop_sse_streams_open")
    socks = [open_stream(server, alice, run) for _ in range(5)]
    for sock in socks:
        read_until(sock, b"event: run.started")
    for index, sock in enumerate(socks):
        append_deltas(run, 3, start=3 * index)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
        sock.close()
    append_deltas(run, 5, start=15)
    wait_until(lambda: metric(server, "arkloop_sse_streams_open") == open_before, what="the streams to end")
    # The server still follows the run for a new client, from the start.
    sock = open_stream(server, alice, run)
    received = read_until(sock, b"event: message.delta")
    finish(run)
    with sock:
        _, chunks = dechunk(read_to_eof(sock, received))
    assert b"".join(chunks) == replay_body(server, alice, run)


def test_without_daphnes_send_there_is_no_writer():
    async def send(message: dict) -> None:
        pass

    assert transport.chunk_writer(send) is None
    assert transport.chunk_writer(functools.partial(send)) is None


def test_startup_check_refuses_daphne_or_twisted_code_it_was_not_written_for(monkeypatch):
    transport.check_daphne()  # the pinned versions pass
    monkeypatch.setitem(transport._EXPECTED_SOURCES, "Request.write", "0" * 64)
    with pytest.raises(RuntimeError, match="Request.write"):
        transport.check_daphne()

