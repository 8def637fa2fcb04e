"""Pooled connections that died — a PostgreSQL restart or failover, pg_terminate_backend — cost no
request an error (arkloop/postgresql/base.py).

Found by `make soak`: after its PostgreSQL restarts, the schema fuzz got 500s from a Daphne that
had served requests before — psycopg's pool discarded one dead connection per attempt with a
growing pause in between, and requests timed out waiting."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection

from tests.servers import DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)


def test_requests_after_every_pooled_connection_was_terminated_all_succeed(alice, database_url):
    if connection.vendor != "postgresql":
        pytest.skip("the connection pool is PostgreSQL's")
    with DaphneServer(database_url=database_url) as server, \
            httpx.Client(base_url=server.url, headers=alice.auth, timeout=30) as http:
        with ThreadPoolExecutor(8) as pool:  # several request threads, several pooled connections
            assert set(pool.map(lambda _: http.get("/v1/threads").status_code, range(48))) == {200}
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                           "AND backend_type = 'client backend'")
            assert cursor.fetchone()[0] >= 2
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: http.get("/v1/threads").status_code, range(48)))
        log = server.read_log()
    assert statuses == [200] * 48, log[-3000:]
    assert "a pooled database connection was dead: checking the others" in log

