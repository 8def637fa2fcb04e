"""Endpoints for load balancers and Prometheus, outside /v1 and without API authentication.

- `GET /healthz`: the process is alive (touches nothing else).
- `GET /readyz`: the database answers and every migration is applied; 503 otherwise. The
  migrations check reads the migration files and the `django_migrations` table, so it runs until
  it first succeeds and is remembered from then on (migrations are applied before a release
  starts, not while it runs); each later probe costs one `SELECT 1`.
- `GET /metrics`: the process's Prometheus metrics (arkloop/metrics.py), behind
  ARKLOOP_METRICS_TOKEN when it is set.

Under Daphne, `OperationsEndpoints` answers them in front of Django: load balancers and
Prometheus address a process by its IP, which ALLOWED_HOSTS rightly refuses for the API, and a
probe needs none of Django's request cycle. The Django views below give the same answers to
Django's test client and to WSGI. None of them is counted in the request metrics, traced, or
logged per request.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from arkloop import metrics
from arkloop.tracing import request_trace_id

log = logging.getLogger(__name__)
PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_PROBES = frozenset({"/healthz", "/readyz"})
# A probe gets its answer within this, even when the database (or the pool in front of it) hangs.
READY_TIMEOUT_SECONDS = 3.0
# Threads of their own: a probe or a scrape stuck on a hanging database never takes a thread the
# API needs, and they never pile up beyond these two.
_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="arkloop-operations")
_migrated = False


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, data: dict) -> Answer:
    return Answer(status, json.dumps(data).encode())


# --- the answers ------------------------------------------------------------------------------

def healthz_answer() -> Answer:
    return _json(200, {"status": "ok"})


async def readyz_answer() -> Answer:
    try:
        problem = await asyncio.wait_for(_in_thread(_database_problem), READY_TIMEOUT_SECONDS)
    except TimeoutError:
        problem = f"the database did not answer within {READY_TIMEOUT_SECONDS:g}s"
    if problem:
        return _json(503, {"status": "unavailable", "reason": problem})
    return _json(200, {"status": "ok"})


def metrics_answer(*, authorization: str | None, accept: str | None) -> Answer:
    """Reads the database (two gauges): call it on a thread."""
    if not metrics.token_accepted(authorization):
        return Answer(401, b"a metrics token is required\n", "text/plain; charset=utf-8",
                      {"WWW-Authenticate": 'Bearer realm="metrics"'})
    body, content_type = metrics.exposition(metrics.API, accept)
    return Answer(200, body, content_type)


def _database_problem() -> str | None:
    """None when ready; else what is wrong (for the 503 body: no secret, no connection string)."""
    global _migrated
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not _migrated:
            executor = MigrationExecutor(connection)
            if executor.migration_plan(executor.loader.graph.leaf_nodes()):
                return "migrations are not applied"
            _migrated = True
        return None
    except DatabaseError as exc:
        log.warning("readyz: the database is not usable (%s)", type(exc).__name__)
        return "the database is unavailable"
    finally:
        connection.close()


async def _in_thread(fn: Callable, *args: object):
    return await asyncio.get_running_loop().run_in_executor(_THREADS, fn, *args)


# --- under Daphne: an ASGI layer in front of Django ------------------------------------------

class OperationsEndpoints:
    """ASGI app: the three endpoints answered here, everything else handed to `app`."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] not in PATHS:
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        answer = await _asgi_answer(scope["method"], scope["path"], headers)
        answer.headers["X-Trace-Id"] = request_trace_id(headers.get("traceparent"))
        await send({"type": "http.response.start", "status": answer.status, "headers": [
            (b"content-type", answer.content_type.encode()), (b"content-length", str(len(answer.body)).encode()),
            *((name.encode(), value.encode("latin-1")) for name, value in answer.headers.items())]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else answer.body})


async def _asgi_answer(method: str, path: str, headers: dict[str, str]) -> Answer:
    if method not in ("GET", "HEAD"):
        return Answer(405, b"", "text/plain", {"Allow": "GET, HEAD"})
    if path == "/healthz":
        return healthz_answer()
    if path == "/readyz":
        return await readyz_answer()
    return await _in_thread(_scrape, headers.get("authorization"), headers.get("accept"))


def _scrape(authorization: str | None, accept: str | None) -> Answer:
    try:
        return metrics_answer(authorization=authorization, accept=accept)
    finally:
        connection.close()  # nothing held between scrapes (with a pool: back to it)


# --- Django views (the test client, WSGI) ----------------------------------------------------

def _response(answer: Answer) -> HttpResponse:
    response = HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)
    for name, value in answer.headers.items():
        response[name] = value
    return response


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    return _response(healthz_answer())


@require_safe
async def readyz(request: HttpRequest) -> HttpResponse:
    return _response(await readyz_answer())


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    return _response(metrics_answer(authorization=request.headers.get("Authorization"),
                                    accept=request.headers.get("Accept")))


class QuietProbes(logging.Filter):
    """Drops Django's per-request log lines (e.g. `Service Unavailable: /readyz`) for the probes."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return getattr(request, "path", None) not in _PROBES
