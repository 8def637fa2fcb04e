"""Trace ids: one per request, 32 lowercase hex, carried in a context variable.

The middleware sets it; the error envelope, services (a run keeps the trace id it was created
with) and log lines read it from here. A request that carries a valid W3C `traceparent` header
keeps the caller's trace id, so a run joins the trace of whatever created it; an invalid header
is ignored. With OpenTelemetry on (arkloop.otel), the request's span decides the id instead —
the same one, since OpenTelemetry reads `traceparent` by the same rules.
"""
from __future__ import annotations

import contextvars
import re
import uuid

_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("arkloop_trace_id", default=None)

# version-traceid-parentid-flags (W3C Trace Context §3.2), lowercase hex only.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_PARENT = "0" * 32, "0" * 16
MAX_TRACEPARENT_LENGTH = 512  # a longer header is not one a tracer sent; don't scan it


def new_trace_id() -> str:
    return uuid.uuid4().hex


def traceparent_trace_id(header: str | None) -> str | None:
    """The trace id of a valid `traceparent` header, else None.

    Invalid: not lowercase hex in the four fields, version `ff`, an all-zero trace or parent id,
    or (version 00) anything after the flags. Versions above 00 may append fields; they are
    skipped, as the recommendation says.
    """
    if not header or len(header) > MAX_TRACEPARENT_LENGTH:
        return None
    match = _TRACEPARENT.fullmatch(header.strip(" \t"))
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or parent_id == _ZERO_PARENT:
        return None
    return trace_id


def request_trace_id(traceparent: str | None) -> str:
    """The trace id of a request: the caller's (valid traceparent), else a fresh one."""
    return traceparent_trace_id(traceparent) or new_trace_id()


def current_trace_id() -> str:
    """The trace id of the request being served, or a fresh one outside a request."""
    value = _trace_id.get()
    if value is None:
        value = new_trace_id()
        _trace_id.set(value)
    return value


def set_trace_id(value: str) -> contextvars.Token:
    return _trace_id.set(value)


def reset_trace_id(token: contextvars.Token) -> None:
    _trace_id.reset(token)
