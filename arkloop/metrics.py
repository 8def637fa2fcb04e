"""Prometheus metrics: every metric object of the service, in two registries.

- `API` is what Daphne serves at `GET /metrics` (arkloop/operations.py): HTTP requests by route,
  open event streams and the events they sent, and two gauges read from the database at scrape
  time (one cheap query each, on the partial index of active runs).
- `RUNNER` is what `runagents --metrics-port N` serves: finished runs, queue wait, model latency,
  tokens and cost, tool calls, webhook deliveries and the runner's slots. The runner updates them
  through runs/runner/telemetry.py.

Both are per process: every Daphne and every runner counts what it did itself, and Prometheus
scrapes each (`sum without (instance)` adds them up). The database gauges are the same in every
Daphne process (`max` rather than `sum` them). Label values are bounded: URL patterns rather
than paths, known methods, tool names bucketed; never a run, thread, org or user id.
"""
from __future__ import annotations

import hmac
import logging
import re
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.db import DatabaseError
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)
disable_created_metrics()  # no `_created` series beside every counter: half the lines, no information lost


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    return registry


API = _registry()
RUNNER = _registry()

# Seconds. API requests take milliseconds; a stream's "duration" is the time to its first byte;
# a queue wait or a first token can take minutes when runners or providers are overloaded.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
QUEUE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)

# --- Daphne ------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter("arkloop_http_requests", "HTTP requests answered, by method, URL pattern and status.",
                        ["method", "route", "status"], registry=API)
HTTP_DURATION = Histogram("arkloop_http_request_duration_seconds",
                          "Time to answer a request (for event streams: until the stream started).",
                          ["route"], buckets=HTTP_BUCKETS, registry=API)
SSE_STREAMS_OPEN = Gauge("arkloop_sse_streams_open", "Event streams open in this process.", registry=API)
SSE_EVENTS_SENT = Counter("arkloop_sse_events_sent", "Run events written to event streams.", registry=API)
SSE_EVENTS_DIRECT = Counter("arkloop_sse_events_direct", "Of those, events the hub wrote to live streams itself "
                            "(under Daphne, without waking the stream's task).", registry=API)

# --- runagents ---------------------------------------------------------------------------------

RUNS_FINISHED = Counter("arkloop_runs_finished", "Runs this runner finished, by status and error class.",
                        ["status", "error_class"], registry=RUNNER)
RUN_QUEUE_WAIT = Histogram("arkloop_run_queue_wait_seconds", "From a run's creation to its first claim.",
                           buckets=QUEUE_BUCKETS, registry=RUNNER)
LLM_TTFT = Histogram("arkloop_llm_time_to_first_token_seconds",
                     "From a provider call to its first streamed output (text or tool call).",
                     ["provider", "model"], buckets=TTFT_BUCKETS, registry=RUNNER)
LLM_TOKENS = Counter("arkloop_llm_tokens", "Tokens of committed model turns (type: input, output, cached_input).",
                     ["provider", "model", "type"], registry=RUNNER)
LLM_COST = Counter("arkloop_llm_cost_usd", "Cost in USD of committed model turns.", ["provider", "model"],
                   registry=RUNNER)
TOOL_CALLS = Counter("arkloop_tool_calls", "Tool calls by tool (mcp__* as `mcp`, unknown names as `other`) "
                     "and outcome (ok, error, denied).", ["tool", "outcome"], registry=RUNNER)
WEBHOOK_DELIVERIES = Counter("arkloop_webhook_deliveries", "Webhook delivery attempts by outcome "
                             "(delivered, retry, failed, disabled).", ["outcome"], registry=RUNNER)
RUNNER_SLOTS = Gauge("arkloop_runner_slots", "The runner's run slots (--concurrency), busy or free.", ["state"],
                     registry=RUNNER)

# Series that exist before their first event, so rate() and alerts see a 0 rather than nothing.
for _status in ("completed", "cancelled"):
    RUNS_FINISHED.labels(_status, "")
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed", "disabled")
for _outcome in WEBHOOK_OUTCOMES:
    WEBHOOK_DELIVERIES.labels(_outcome)

# --- labels ------------------------------------------------------------------------------------

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
_REGEX_LEFT = re.compile(r"[\\()\[\]*+?|]")
_route_labels: dict[str, str] = {}


def _route_template(route: str) -> str:
    """`v1/runs/(?P<run_id>[^/:]+):cancel$` → `/v1/runs/{run_id}:cancel`; `pk` reads `id` (as in
    the OpenAPI schema). A pattern that is still a regex (the /v1 catch-all) is `unmatched`."""
    def name(match: re.Match) -> str:
        return "{" + ("id" if match[1] == "pk" else match[1]) + "}"

    text = _CONVERTER.sub(name, _REGEX_GROUP.sub(name, route)).replace("^", "").replace("$", "")
    return UNMATCHED if _REGEX_LEFT.search(text) else "/" + text


def route_label(match: Any) -> str:
    """The URL pattern of a resolved request (Django's ResolverMatch), never the raw path."""
    if match is None or not getattr(match, "route", None):
        return UNMATCHED
    label = _route_labels.get(match.route)
    if label is None:
        label = _route_labels[match.route] = _route_template(match.route)
    return label


def method_label(method: str | None) -> str:
    return method if method in METHODS else "OTHER"


_request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def request_observe(*, method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request (children cached: a `labels()` lookup costs more than the count)."""
    key = (method, route, status)
    children = _request_children.get(key)
    if children is None:
        children = _request_children.setdefault(
            key, (HTTP_REQUESTS.labels(method, route, str(status)), HTTP_DURATION.labels(route)))
    children[0].inc()
    children[1].observe(seconds)


# --- gauges read from the database at scrape time ----------------------------------------------

class RunsFromDatabase:
    """`arkloop_runs_active{status}` and `arkloop_runs_oldest_unclaimed_age_seconds`, one query each.

    When the database cannot be read the two are left out of the scrape (the rest is served), and
    the failure is logged.
    """

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from runs.selectors import runs_active_counts, runs_oldest_unclaimed_age_seconds

        try:
            counts, age = runs_active_counts(), runs_oldest_unclaimed_age_seconds()
        except DatabaseError as exc:
            log.warning("metrics: reading runs from the database failed (%s)", exc)
            return []
        active, oldest = self._families()
        for status, count in counts.items():
            active.add_metric([status], count)
        oldest.add_metric([], age)
        return [active, oldest]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily("arkloop_runs_active", "Runs not finished yet, by status.", labels=["status"]),
                GaugeMetricFamily("arkloop_runs_oldest_unclaimed_age_seconds",
                                  "How long the oldest run waiting for a runner has waited (0: none waits)."))


API.register(RunsFromDatabase())

# --- serving ------------------------------------------------------------------------------------


def token_accepted(authorization: str | None) -> bool:
    """ARKLOOP_METRICS_TOKEN unset: anyone may scrape. Set: `Authorization: Bearer <token>` only."""
    token = settings.ARKLOOP_METRICS_TOKEN
    if not token:
        return True
    scheme, _, value = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The registry in the format the scraper asked for (Prometheus text, or OpenMetrics)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape would drown the runner's log


def _guarded(app: Callable) -> Callable:
    def guarded_app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not token_accepted(environ.get("HTTP_AUTHORIZATION")):
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                ("WWW-Authenticate", 'Bearer realm="metrics"')])
            return [b"a metrics token is required\n"]
        return app(environ, start_response)
    return guarded_app


def serve_runner_metrics(*, port: int, addr: str = "0.0.0.0") -> WSGIServer:
    """Serve RUNNER over HTTP on a daemon thread (any path; the token rule as on Daphne)."""
    server = make_server(addr, port, _guarded(make_wsgi_app(RUNNER)), _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="arkloop-metrics", daemon=True).start()
    return server
