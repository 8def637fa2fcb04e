"""Request-wide conventions of SPEC §1: trace ids and the envelope for Django's errors.

Both middlewares work sync and async, so the ASGI event stream is never wrapped in a thread.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from arkloop import metrics, otel
from arkloop.errors import ApiError, _translate, error_response
from arkloop.operations import PATHS
from arkloop.parsers import check_query_text
from arkloop.tracing import request_trace_id, set_trace_id

log = logging.getLogger("arkloop.request")


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/v1/") or request.path == "/v1"


class HybridMiddleware:
    """A middleware Django can call sync or async; subclasses fill in `before` and `after`."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        return self.handle(request, self.get_response)

    async def _acall(self, request: HttpRequest):
        early = self.before(request)
        if early is not None:
            return self.after(request, early)
        return self.after(request, await self.get_response(request))

    def handle(self, request: HttpRequest, get_response: Callable) -> HttpResponse:
        early = self.before(request)
        if early is not None:
            return self.after(request, early)
        return self.after(request, get_response(request))

    def before(self, request: HttpRequest) -> HttpResponse | None:
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class RequestMetricsMiddleware(HybridMiddleware):
    """Counts and times every answered request by URL pattern (arkloop.metrics); probes and
    scrapes (arkloop.operations.PATHS) are not counted. Outermost, so it sees every answer."""

    def before(self, request: HttpRequest) -> None:
        request._metrics_started = time.perf_counter()
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if request.path not in PATHS:
            metrics.request_observe(method=metrics.method_label(request.method),
                                    route=metrics.route_label(request.resolver_match),
                                    status=response.status_code,
                                    seconds=time.perf_counter() - request._metrics_started)
        return response


def trace_id_for(request: HttpRequest) -> str:
    """The request's trace id: its span's when tracing is on, else the caller's traceparent's or new."""
    if otel.ENABLED and (span_trace_id := otel.span_trace_id()):
        return span_trace_id
    return request_trace_id(request.headers.get("traceparent"))


class TraceIdMiddleware(HybridMiddleware):
    """Gives each request a trace id (request.trace_id) and every response an X-Trace-Id."""

    def before(self, request: HttpRequest) -> None:
        request.trace_id = trace_id_for(request)
        request._trace_token = set_trace_id(request.trace_id)
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response["X-Trace-Id"] = request.trace_id
        return response


# Codes for the error pages Django itself answers with (SPEC §1's, and `http.bad_request` for the
# 400 of a request Django refuses outright, such as a Host header that names no valid host).
_CODE_OF_STATUS = {400: ("http.bad_request", "bad request"), 403: ("auth.forbidden", "forbidden"),
                   404: ("http.not_found", "not found"), 405: ("http.method_not_allowed", "method not allowed"),
                   413: ("validation.body_too_large", "the request body is too large")}


class ApiErrorMiddleware(HybridMiddleware):
    """Under /v1: 422 for query text no field may hold, the envelope for any crash, and the
    envelope in place of any error page Django renders in HTML (its 400 for a bad Host header, a
    CSRF 403) — a client of the API never gets HTML.

    (Bodies over the limit never get here: arkloop.body answers them.)
    """

    def before(self, request: HttpRequest) -> HttpResponse | None:
        if not _is_api(request):
            return None
        try:
            check_query_text(request.GET)
        except ApiError as error:
            return error_response(error)
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if (response.status_code < 400 or not _is_api(request)
                or response.get("Content-Type", "").startswith("application/json")):
            return response
        status = response.status_code
        code, message = _CODE_OF_STATUS.get(status) or (("internal.error", "internal error") if status >= 500
                                                         else _CODE_OF_STATUS[400])
        error = ApiError(code, message, headers={"Allow": response["Allow"]} if response.has_header("Allow") else {})
        error.status = status
        return error_response(error)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not _is_api(request):
            return None
        error = _translate(exc)
        if error is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            error = ApiError("internal.error", "internal error")
            error.status = 500
        return error_response(error)

