"""1,000 clients connecting at once are all queued by the kernel, none dropped (SPEC §4 "SSE").

Daphne is started everywhere through scripts/daphne.sh, with a listen backlog of 2048 instead of
Twisted's 50. Daphne is stopped (SIGSTOP) while the burst arrives, the worst moment and the one
that does not depend on how fast the machine is (tests/listen_flood.py). The burst runs in a
network namespace of its own when the machine allows one, so the kernel's counters see only this
test; otherwise in the machine's (where other processes may add to them).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.servers import ROOT, listen_backlog

BURST = 1000


def own_network_namespace() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-n", "true"]).returncode == 0


@pytest.fixture(scope="module")
def bursts() -> dict:
    """The same burst against Daphne as scripts/daphne.sh starts it, and with Twisted's old 50."""
    command, env = [sys.executable, "-m", "tests.listen_flood", str(BURST), "50", "2048"], dict(os.environ)
    if own_network_namespace():
        command, env = ["unshare", "-n", *command], {**env, "ARKLOOP_FLOOD_NETNS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_daphne_listens_with_a_backlog_of_at_least_1024(live_server):
    assert listen_backlog(int(live_server.url.rsplit(":", 1)[1])) >= 1024


def test_a_burst_of_1000_connects_loses_no_syn(bursts):
    assert bursts["2048"]["backlog"] == 2048
    assert bursts["2048"]["drops"] == {"ListenOverflows": 0, "ListenDrops": 0}
    assert bursts["2048"]["connected_while_stopped"] == BURST  # all held by the kernel, none accepted yet
    assert bursts["2048"]["connected"] == BURST


def test_the_counters_do_see_drops_with_twisteds_default_backlog(bursts):
    """The control: the same burst against a backlog of 50 overflows the queue (so the check above can fail)."""
    assert bursts["50"]["backlog"] == 50
    assert bursts["50"]["drops"]["ListenOverflows"] > 0
    assert bursts["50"]["connected_while_stopped"] < BURST
