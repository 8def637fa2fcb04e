"""A burst of simultaneous TCP connects against Daphne, counted by the kernel (tests/test_listen_backlog.py).

Run as a program (`python -m tests.listen_flood COUNT BACKLOG…`), ideally in a network namespace
of its own (`unshare -n`), so the kernel's counters (`TcpExtListenOverflows`, `TcpExtListenDrops`
in /proc/net/netstat, what `nstat` reads) count only this burst. For each backlog it starts
Daphne as `make run` does (scripts/daphne.sh), stops it (SIGSTOP), opens COUNT connections at
once, lets it go on (SIGCONT) once the kernel has answered what it will, and prints, as JSON, the
listen backlog `ss` reports, how many connected while Daphne was stopped, how many in all, and how
much each counter grew.

Daphne is stopped for the burst because that is the worst moment a burst can arrive at (its one
thread busy elsewhere) and the only one that does not depend on the machine: a running Daphne on
an idle core may accept as fast as one client process connects, and then even a backlog of 50
overflows nothing (seen once in CI). Stopped, the kernel's queue has to hold the whole burst.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

from tests.servers import ROOT, daphne_command, free_port, listen_backlog, wait_for_port

COUNTERS = ("ListenOverflows", "ListenDrops")
CONNECT_GUARD = 30.0  # a hang guard: dropped SYNs are retried by the client's kernel after 1 s, 3 s, …
STOPPED_FOR = 0.5  # long enough for loopback handshakes, shorter than the first SYN retry (1 s)


def listen_counters() -> dict[str, int]:
    """The TcpExt listen counters of this network namespace."""
    lines = [line.split() for line in open("/proc/net/netstat") if line.startswith("TcpExt:")]
    values = dict(zip(lines[0][1:], (int(v) for v in lines[1][1:]), strict=True))
    return {name: values[name] for name in COUNTERS}


def connect_all(port: int, count: int, server: subprocess.Popen) -> tuple[int, int]:
    """Open `count` connections at once (non-blocking connects, SYNs back to back) while `server`
    is stopped; (how many completed before it went on, how many in all)."""
    selector = selectors.DefaultSelector()
    sockets = []
    connected = 0

    def wait(until: float) -> None:
        nonlocal connected
        while connected < count and time.monotonic() < until:
            for key, _ in selector.select(timeout=max(0.0, min(1.0, until - time.monotonic()))):
                selector.unregister(key.fileobj)
                connected += key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0

    server.send_signal(signal.SIGSTOP)
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            sockets.append(sock)
            selector.register(sock, selectors.EVENT_WRITE)
        wait(time.monotonic() + STOPPED_FOR)
        while_stopped = connected
        server.send_signal(signal.SIGCONT)
        wait(time.monotonic() + CONNECT_GUARD)
        return while_stopped, connected
    finally:
        server.send_signal(signal.SIGCONT)
        for sock in sockets:
            sock.close()
        selector.close()


def burst(count: int, backlog: str) -> dict:
    port = free_port()
    env = {**os.environ, "PYTHON": sys.executable, "ARKLOOP_LISTEN_BACKLOG": backlog, "LOG_LEVEL": "WARNING",
           "DATABASE_URL": f"sqlite:///{tempfile.gettempdir()}/arkloop-listen-flood.sqlite3"}
    with subprocess.Popen(daphne_command("127.0.0.1", port), cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as daphne:
        try:
            wait_for_port(port, process=daphne)
            before = listen_counters()
            while_stopped, connected = connect_all(port, count, daphne)
            after = listen_counters()
            return {"backlog": listen_backlog(port), "connected_while_stopped": while_stopped, "connected": connected,
                    "drops": {name: after[name] - before[name] for name in COUNTERS}}
        finally:
            daphne.terminate()


def main() -> None:
    count, backlogs = int(sys.argv[1]), sys.argv[2:]
    if os.environ.get("ARKLOOP_FLOOD_NETNS"):  # a fresh namespace starts with its loopback down
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    print(json.dumps({backlog: burst(count, backlog) for backlog in backlogs}))


if __name__ == "__main__":
    main()
