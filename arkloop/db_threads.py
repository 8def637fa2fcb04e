"""Database calls from asyncio code, on a few threads that each keep one Django connection.

Django's ORM is synchronous. Asyncio code — the runner's many runs, its webhook sender, the SSE
streams and their hub — must neither block its event loop on a query nor hold a connection per
task (200 runs or 1,000 streams would mean as many connections). So each of them owns a
`DbThreads`: `await db.call(fn, ...)` runs a plain synchronous function on one of `threads`
worker threads, each keeping its Django connection open between calls. A process thus uses at
most `threads` connections for that component, however many tasks wait on it, and pays no
connection setup per query.

Django's own async ORM is not used: under ASGI it runs queries in the request's thread-sensitive
thread, and keeps that connection for the response's whole life — one connection per open stream.

A connection that broke (a server restart, `pg_terminate_backend`) is closed when the error
surfaces, so that thread's next call opens a new one. `read()` also retries such a call once, for
functions that only read; `call()` leaves the decision to the caller (a write may have committed).
A job whose caller was cancelled before a thread picked it up is skipped, as with an executor.
"""
from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connection

from arkloop import otel

T = TypeVar("T")
BROKEN_CONNECTION = (InterfaceError, OperationalError)
_STOP = object()


def _drop_if_broken() -> None:
    """Close this thread's connection after a connection error, unless a transaction still owns it."""
    if connection.connection is not None and not connection.in_atomic_block:
        connection.close()


def _run(fn: Callable[..., T], args: tuple, kwargs: dict[str, Any], retry: bool) -> T:
    try:
        return fn(*args, **kwargs)
    except BROKEN_CONNECTION:
        _drop_if_broken()
        if not retry:
            raise
    return fn(*args, **kwargs)


def _resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return  # the caller went away while its query ran
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class DbThreads:
    """`threads` worker threads, started on the first call and stopped by `close()`."""

    def __init__(self, threads: int, *, name: str) -> None:
        self.threads = threads
        self.name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on a worker thread; errors are raised to the caller as they are."""
        return await self._submit(fn, args, kwargs, retry=False)

    async def read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Like `call`, retried once on a fresh connection if the connection broke: only for reads."""
        return await self._submit(fn, args, kwargs, retry=True)

    async def _submit(self, fn: Callable[..., T], args: tuple, kwargs: dict[str, Any], *, retry: bool) -> T:
        if not self._workers:
            self._start()
        future = asyncio.get_running_loop().create_future()
        # With tracing on, the query's span joins the caller's trace (contextvars).
        context = contextvars.copy_context() if otel.ENABLED else None
        self._jobs.put((future, context, fn, args, kwargs, retry))
        return await future

    def _start(self) -> None:
        with self._lock:
            if self._workers:
                return
            for index in range(self.threads):
                worker = threading.Thread(target=self._work, name=f"arkloop-{self.name}-{index}", daemon=True)
                worker.start()
                self._workers.append(worker)

    def _work(self) -> None:
        try:
            while (job := self._jobs.get()) is not _STOP:
                self._settle(*job)
        finally:
            connection.close()

    @staticmethod
    def _settle(future: asyncio.Future, context: contextvars.Context | None, fn: Callable, args: tuple,
                kwargs: dict[str, Any], retry: bool) -> None:
        if future.cancelled():  # a racy read is fine: at worst the job runs, as a started one would
            return
        try:
            if context is None:
                result, error = _run(fn, args, kwargs, retry), None
            else:
                result, error = context.run(_run, fn, args, kwargs, retry), None
        except BaseException as exc:
            result, error = None, exc
        loop = future.get_loop()
        if not loop.is_closed():
            loop.call_soon_threadsafe(_resolve, future, result, error)

    def close(self) -> None:
        """Let queued jobs finish, then stop every thread, each closing its connection (blocks).
        The next call starts new threads."""
        with self._lock:
            for _ in self._workers:
                self._jobs.put(_STOP)
            for worker in self._workers:
                worker.join()
            self._workers.clear()
