"""Endpoints for load balancers and Prometheus, outside /v1 and without API authentication.

- `GET /healthz`: the process is alive (touches nothing else).
- `GET /readyz`: the database answers and every migration is applied; 503 otherwise. The
  migrations check reads the migration files and the `django_migrations` table, so it runs until
  it first succeeds and is remembered from then on (migrations are applied before a release
  starts, not while it runs); each later probe costs one `SELECT 1`.
- `GET /metrics`: the process's Prometheus metrics (arkloop/metrics.py), behind
  ARKLOOP_METRICS_TOKEN when it is set.

None of them is counted in the request metrics, traced, or logged per request.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from arkloop import metrics

log = logging.getLogger(__name__)
PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# A probe gets its answer within this, even when the database (or the pool in front of it) hangs.
READY_TIMEOUT_SECONDS = 3.0
# Threads of their own: a probe stuck on a hanging database never takes a thread the API needs.
_PROBE_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="arkloop-readyz")
_migrated = False


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    try:
        problem = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(_PROBE_THREADS, _database_problem),
                                         READY_TIMEOUT_SECONDS)
    except TimeoutError:
        problem = f"the database did not answer within {READY_TIMEOUT_SECONDS:g}s"
    if problem:
        return JsonResponse({"status": "unavailable", "reason": problem}, status=503)
    return JsonResponse({"status": "ok"})


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
        connection.close()  # a probe holds no connection between probes (with a pool: back to it)


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics.token_accepted(request.headers.get("Authorization")):
        response = HttpResponse("a metrics token is required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = metrics.exposition(metrics.API, request.headers.get("Accept"))
    return HttpResponse(body, content_type=content_type)


class QuietProbes(logging.Filter):
    """Drops Django's per-request log lines (e.g. `Service Unavailable: /readyz`) for the probes."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return getattr(request, "path", None) not in _PROBES


_PROBES = frozenset({"/healthz", "/readyz"})
