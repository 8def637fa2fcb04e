"""Scale-out: two Daphne processes and two runners share one database. Runs created through one
server are executed by either runner and streamed, without loss, from the other server."""
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from runs.models import RunEvent
from tests.runner.processes import RunnerProcess, wait_until
from tests.servers import DaphneServer
from tests.stream.sse_client import events_url, read_all

RUNS = 12


@pytest.fixture
def cluster(database_url, transactional_db):
    unlimited = {"ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG": "0"}
    with DaphneServer(database_url=database_url, **unlimited) as a, \
            DaphneServer(database_url=database_url, **unlimited) as b, \
            RunnerProcess(database_url, "--concurrency", "4") as r1, \
            RunnerProcess(database_url, "--concurrency", "4") as r2:
        yield a, b, (r1, r2)


def start_run(base: str, headers: dict, text: str) -> str:
    with httpx.Client(base_url=base, headers=headers, timeout=20) as http:
        thread = http.post("/v1/threads", json={"title": text}).json()
        http.post(f"/v1/threads/{thread['id']}/messages", json={"content": text})
        created = http.post(f"/v1/threads/{thread['id']}/runs", json={})
        assert created.status_code == 201, created.text
        return created.json()["run_id"]


def slow_reply(text: str) -> str:
    """A stub script whose reply streams over ~0.6 s, so the other server follows it live."""
    return "/stub " + json.dumps({"reply": text, "chunks": 4, "delay_ms": 150})


def test_runs_created_on_one_server_stream_completely_from_the_other(cluster, alice):
    a, b, runners = cluster
    with ThreadPoolExecutor(max_workers=RUNS) as pool:
        texts, streams = {}, {}
        for i in range(RUNS):
            run_id = start_run(a.url, alice.auth, slow_reply(f"reply {i}"))
            texts[run_id] = f"reply {i}"
            streams[run_id] = pool.submit(read_all, events_url(b.url, run_id), alice.auth)
        results = {run_id: future.result() for run_id, future in streams.items()}
    for run_id, text in texts.items():
        response, frames = results[run_id]
        assert response.status_code == 200
        assert [f.seq for f in frames] == list(range(1, len(frames) + 1))
        assert frames[-1].event == "run.completed"
        reply = "".join(f.data["data"]["content"] for f in frames if f.event == "message.delta")
        assert reply == text
        assert RunEvent.objects.filter(run_id=run_id, type="run.started").count() == 1
    # A runner logs a run's outcome after its commit, which streams may deliver first.
    def logs() -> str:
        return runners[0].log() + runners[1].log()

    wait_until(lambda: all(f"run {run_id} completed" in logs() for run_id in texts), what="the runners' logs")
    for run_id in texts:
        assert logs().count(f"run {run_id} completed") == 1, "each run executes exactly once"
