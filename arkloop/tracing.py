"""Trace ids: one per request, 32 lowercase hex, carried in a context variable.

The middleware sets it; the error envelope, services (a run keeps the trace id it was created
with) and log lines read it from here.
"""
import contextvars
import uuid

_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("arkloop_trace_id", default=None)


def new_trace_id() -> str:
    return uuid.uuid4().hex


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
