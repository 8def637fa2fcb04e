"""MCP calls in a real `runagents` process: a cancel interrupts a call in flight, and a runner killed
after a recorded result is replaced without calling the tool again."""
from __future__ import annotations

import uuid

import pytest

from tests.mcp.helpers import register
from tests.runner.helpers import assert_gapless, deltas, of_type, run, start, stub
from tests.runner.processes import RunnerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
PRIVATE_OK = {"ARKLOOP_ALLOW_PRIVATE_URLS": "true"}


def finished(run_id: str) -> bool:
    return run(run_id).status in ("completed", "failed", "cancelled")


def test_cancel_interrupts_an_mcp_call_in_flight(alice, database_url, mcp_server):
    register(alice, mcp_server.url, timeout_seconds=120)
    tag = uuid.uuid4().hex
    script = stub(tools=[{"name": "mcp__calc__sleep", "arguments": {"seconds": 30, "tag": tag}}], reply="never")
    _, run_id = start(alice, script)
    with RunnerProcess(database_url, **PRIVATE_OK):
        wait_until(lambda: mcp_server.calls("sleep", tag=tag) == 1, what="the call to reach the server")
        assert alice.client.post(f"/v1/runs/{run_id}:cancel").status_code == 200
        # A guard against hanging only: the 30 s call must not be waited for.
        wait_until(lambda: finished(run_id), what="the run to stop", timeout=15)
    assert run(run_id).status == "cancelled" and of_type(run_id, "tool.result") == []
    wait_until(lambda: mcp_server.interrupted("sleep", tag=tag) == 1, what="the server to see the call go away")
    assert_gapless(run_id)


def test_a_runner_killed_after_a_recorded_result_is_replaced_without_calling_again(alice, database_url, mcp_server):
    register(alice, mcp_server.url, require_approval="never")
    note = f"only once {uuid.uuid4().hex}"
    script = stub(tools=[{"name": "mcp__calc__write_note", "arguments": {"text": note}}],
                  reply="a b c d e f g h", chunks=8, delay_ms=300)
    _, run_id = start(alice, script)
    with RunnerProcess(database_url, **PRIVATE_OK) as first:
        wait_until(lambda: len(deltas(run_id)) >= 1, what="the reply to start after the tool result")
        first.kill()
    assert of_type(run_id, "tool.result")[0]["result"]["content"][0]["text"] == f"saved: {note}"
    with RunnerProcess(database_url, **PRIVATE_OK) as second:
        wait_until(lambda: finished(run_id), what="the takeover to finish the run")
        assert f"run {run_id} took over" in second.log()
    assert run(run_id).status == "completed" and len(of_type(run_id, "tool.result")) == 1
    assert [r["reason"] for r in of_type(run_id, "run.restarted")] == ["lease_expired"]
    assert mcp_server.calls("write_note", text=note) == 1
    assert_gapless(run_id)
