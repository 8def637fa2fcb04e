"""A hostile tenant cannot stall anyone else's runs: bytes PostgreSQL refuses, runaway scripts, floods.

Real `runagents` processes on the test database (SQLite and PostgreSQL), runs created through the
API, streams read from a real Daphne.
"""
from __future__ import annotations

import signal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from runs.models import RunEvent
from tests.conftest import make_actor
from tests.runner.helpers import answer, assert_gapless, deltas, of_type, run, start, stub, types
from tests.runner.processes import RunnerProcess, wait_until
from tests.stream.sse_client import events_url, read_all

pytestmark = pytest.mark.django_db(transaction=True)
FFFD = "\ufffd"
TERMINAL = ("completed", "failed", "cancelled")


def finished(run_id: str) -> bool:
    return run(run_id).status in TERMINAL


def staff_client() -> Client:
    staff = get_user_model().objects.create_superuser(username="staff", email="staff@arkloop.test", password="x")
    client = Client()
    client.force_login(staff)
    return client


# Each script puts NUL and lone surrogates (as JSON escapes: the message itself is clean text) into
# one provider-facing field of the stub.
GUILTY = {
    "reply": stub(reply="bad \u0000 byte, lone \ud800 and \udfff", chunks=4),
    "tool arguments": stub(tools=[{"name": "echo", "arguments": {"text": "a\u0000b\ud800", "k\u0000": "v"}}],
                           reply="tools \u0000 done"),
    "usage": stub(reply="counted", usage={"input_tokens": "\u0000\ud800", "output_tokens": 1}),
    "fail message": stub(fail="provider.\u0000\ud800"),
}


def test_nul_and_lone_surrogates_in_model_output_never_touch_another_orgs_run(alice, charlie, live_server,
                                                                               database_url):
    _, innocent = start(charlie, stub(reply="innocent " * 30, chunks=30, delay_ms=30))
    guilty = {field: start(alice, script)[1] for field, script in GUILTY.items()}
    with RunnerProcess(database_url, "--concurrency", "8"):
        wait_until(lambda: all(finished(r) for r in [innocent, *guilty.values()]), what="every run to finish")

    assert run(innocent).status == "completed" and "run.restarted" not in types(innocent)
    assert "".join(deltas(innocent)) == answer(innocent).content == "innocent " * 30
    for run_id in [innocent, *guilty.values()]:
        assert_gapless(run_id)
        assert "run.restarted" not in types(run_id) and run(run_id).attempt == 1  # each ran once

    reply = answer(guilty["reply"]).content
    assert reply == f"bad {FFFD} byte, lone {FFFD} and {FFFD}" == "".join(deltas(guilty["reply"]))
    tooled = guilty["tool arguments"]
    call, result = of_type(tooled, "tool.call")[0], of_type(tooled, "tool.result")[0]
    assert call["arguments"] == {"text": f"a{FFFD}b{FFFD}", f"k{FFFD}": "v"} and result["result"] == f"a{FFFD}b{FFFD}"
    assert answer(tooled).content == f"tools {FFFD} done"
    failed = of_type(guilty["usage"], "run.failed")[0]
    assert (failed["error_class"], run(guilty["usage"]).error_class) == ("provider.bad_request",) * 2
    assert "`usage`" in failed["message"]
    failed = of_type(guilty["fail message"], "run.failed")[0]
    assert failed["error_class"] == run(guilty["fail message"]).error_class == f"provider.{FFFD}{FFFD}"
    assert FFFD in failed["message"]

    admin = staff_client()
    for field, run_id in guilty.items():
        response, frames = read_all(events_url(live_server.url, run_id), alice.auth)
        assert response.status_code == 200, field
        assert [f.data["seq"] for f in frames] == list(range(1, run(run_id).last_seq + 1))
        page = admin.get(f"/admin/runs/run/{run_id}/change/")
        assert page.status_code == 200, field
    _, frames = read_all(events_url(live_server.url, guilty["reply"]), alice.auth)
    assert "".join(f.data["data"]["content"] for f in frames if f.event == "message.delta") == reply
    page = admin.get(f"/admin/runs/run/{guilty['reply']}/change/").content.decode()
    assert f"bad {FFFD} byte" in page


def test_two_flooding_orgs_cannot_keep_a_third_orgs_run_from_the_next_free_slot(alice, charlie, database_url):
    dave = make_actor(org="initech", email="dave@initech.test", role="admin")
    long = stub(reply="long " * 200, chunks=200, delay_ms=100)
    acme, globex = ([start(actor, long)[1] for _ in range(4)] for actor in (alice, charlie))
    with RunnerProcess(database_url, "--concurrency", "4", ARKLOOP_RUNNER_SLOTS_PER_ORG="2"):
        wait_until(lambda: all("run.route.selected" in types(r) for r in (*acme[:2], *globex[:2])),
                   what="the two floods to fill the four slots, two each")
        _, third = start(dave, "hello from a small org")
        assert "run.route.selected" not in types(third)  # every slot is taken
        alice.client.post(f"/v1/runs/{acme[0]}:cancel")  # a slot frees
        wait_until(lambda: finished(third), what="the third org's run to run")
        for run_id in acme + globex:
            (alice if run_id in acme else charlie).client.post(f"/v1/runs/{run_id}:cancel")
    claimed = {str(run_id): pk for run_id, pk in RunEvent.objects.filter(type="run.route.selected").values_list(
        "run_id", "id")}
    # Older queued runs of the flooding orgs were not claimed before it (globex was at its two slots).
    assert all(claimed.get(run_id, float("inf")) > claimed[third] for run_id in (*acme[2:], *globex[2:]))
    assert answer(third).content == "You said: hello from a small org"


def test_a_run_whose_runners_keep_dying_fails_on_its_third_interruption(alice, database_url):
    """Two runners take turns freezing (SIGSTOP) while holding the run: each takeover is a restart,
    the third interruption ends the run `worker.lost` instead of a fourth attempt."""
    _, run_id = start(alice, stub(reply="slow " * 300, chunks=300, delay_ms=100))
    one, two = RunnerProcess(database_url), RunnerProcess(database_url)
    with one, two:
        wait_until(lambda: len(deltas(run_id)) >= 1, what="a runner to stream")
        holder = lambda: one if run(run_id).lease_owner.split(":")[1] == str(one.process.pid) else two  # noqa: E731
        for restarts in (1, 2):
            frozen = holder()
            frozen.signal(signal.SIGSTOP)
            wait_until(lambda n=restarts: len(of_type(run_id, "run.restarted")) == n, what=f"takeover {restarts}")
            wait_until(lambda: len(deltas(run_id)) > 0 and types(run_id)[-1] == "message.delta",
                       what="the new runner to stream")
            frozen.signal(signal.SIGCONT)
        holder().signal(signal.SIGSTOP)
        wait_until(lambda: finished(run_id), what="the third interruption to end the run")
    assert run(run_id).status == "failed" and of_type(run_id, "run.failed")[0]["error_class"] == "worker.lost"
    assert [r["reason"] for r in of_type(run_id, "run.restarted")] == ["lease_expired", "lease_expired"]
    assert_gapless(run_id)
