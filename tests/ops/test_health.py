"""`/healthz` (the process is alive) and `/readyz` (the database answers, migrations applied),
outside /v1 and without authentication; the not-ready cases run a real Daphne on a database that
cannot be reached or is not migrated."""
from __future__ import annotations

import httpx
import pytest

from tests.servers import DaphneServer, free_port


def test_healthz_is_ok_without_authentication(anonymous):
    response = anonymous.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_probes_answer_only_reads(anonymous):
    assert anonymous.post("/healthz").status_code == 405
    assert anonymous.delete("/readyz").status_code == 405
    assert anonymous.head("/healthz").status_code == 200


def test_probes_are_outside_the_api_conventions(anonymous):
    """No envelope and no /v1 alias: /v1/healthz is an unknown API path like any other."""
    assert anonymous.get("/v1/healthz").status_code == 404


@pytest.mark.django_db
def test_readyz_is_ok_on_a_migrated_database(anonymous):
    response = anonymous.get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_live_server_is_healthy_and_ready(live_server, transactional_db):
    with httpx.Client(base_url=live_server.url, timeout=20) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ok"}
        assert len(http.get("/healthz").headers["X-Trace-Id"]) == 32  # still a request of this service
        assert http.head("/readyz").status_code == 200
        refused = http.post("/healthz")
        assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"


def test_probes_and_scrapes_answer_whatever_the_host(live_server, transactional_db):
    """Load balancers and Prometheus address a process by its IP, which ALLOWED_HOSTS refuses for
    the API (400); the operator endpoints answer all the same."""
    with httpx.Client(base_url=live_server.url, timeout=20, headers={"Host": "10.1.2.3:8001"}) as http:
        assert http.get("/v1/threads").status_code == 400
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200
        assert "arkloop_http_requests_total" in http.get("/metrics").text


def test_readyz_is_503_while_the_database_is_unreachable_and_healthz_stays_ok():
    closed = f"postgres://arkloop:secret-password@127.0.0.1:{free_port()}/arkloop"
    with DaphneServer(database_url=closed) as server, httpx.Client(base_url=server.url, timeout=20) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        for _ in range(2):  # the second probe is not answered from a cache
            ready = http.get("/readyz")
            assert ready.status_code == 503, ready.text
            # Refused at once without a pool; with psycopg's pool the probe's own timeout answers.
            assert ready.json()["status"] == "unavailable"
            assert ready.json()["reason"] in ("the database is unavailable", "the database did not answer within 3s")
        assert "secret-password" not in ready.text
        log = server.read_log()
    assert "Service Unavailable: /readyz" not in log  # probes are not logged as errors each time


def test_readyz_is_503_until_migrations_are_applied(tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    with DaphneServer(database_url=empty) as server, httpx.Client(base_url=server.url, timeout=20) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "reason": "migrations are not applied"}
        assert http.get("/healthz").status_code == 200
