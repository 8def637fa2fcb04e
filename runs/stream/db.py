"""Short database calls from async code, on a small pool of dedicated threads.

Streams and the hub never touch the ORM on the event loop. `db_call(fn, **kwargs)` runs a plain
synchronous function on one of POOL_SIZE worker threads, each keeping its own Django connection
open between calls, so:
- a stream holds no connection of its own, idle or not: it borrows a worker for one query;
- a process uses at most POOL_SIZE connections for streaming (plus the hub's LISTEN connection),
  however many streams it serves, and pays no connection setup per query (which would add
  milliseconds to every event's delivery);
- a connection that broke (server restart, pg_terminate_backend) is closed and the call retried
  once on a fresh one; the functions run here only read, so a retry is harmless.

Django's async ORM is not used on purpose: under ASGI it runs queries in the request's
thread-sensitive thread and keeps that connection open until the response ends, i.e. one
connection per open stream. `close_connections()` closes the workers' connections (tests, shutdown).
"""
from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connection

POOL_SIZE = 4
T = TypeVar("T")

_STOP = object()
_jobs: queue.SimpleQueue = queue.SimpleQueue()
_workers: list[threading.Thread] = []
_workers_lock = threading.Lock()


def _run_with_retry(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    try:
        return fn(**kwargs)
    except (InterfaceError, OperationalError):
        connection.close()  # a broken connection: the retry opens a new one
        return fn(**kwargs)


def _settle(future: asyncio.Future, fn: Callable, kwargs: dict[str, Any]) -> None:
    """Run one job on this worker and hand its outcome to the waiting event loop."""
    try:
        result, error = _run_with_retry(fn, kwargs), None
    except BaseException as exc:
        result, error = None, exc
    loop = future.get_loop()
    if not loop.is_closed():
        loop.call_soon_threadsafe(_resolve, future, result, error)


def _resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return  # the stream went away while its query ran
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _work() -> None:
    try:
        while (job := _jobs.get()) is not _STOP:
            _settle(*job)
    finally:
        connection.close()


def _ensure_workers() -> None:
    with _workers_lock:
        if _workers:
            return
        for index in range(POOL_SIZE):
            worker = threading.Thread(target=_work, name=f"arkloop-stream-db-{index}", daemon=True)
            worker.start()
            _workers.append(worker)


async def db_call(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run `fn(**kwargs)` on a stream DB worker thread and wait for its result."""
    _ensure_workers()
    future = asyncio.get_running_loop().create_future()
    _jobs.put((future, fn, kwargs))
    return await future


def close_connections() -> None:
    """Stop the workers, closing their connections; the next db_call starts new ones."""
    with _workers_lock:
        for _ in _workers:
            _jobs.put(_STOP)
        for worker in _workers:
            worker.join()
        _workers.clear()
