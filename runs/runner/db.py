"""Database access for the asyncio runner: a few threads, each with its own Django connection.

Django's ORM is synchronous, and one connection per run would not scale (200 runs → 200
connections). So every query of every run goes through `Db.call`, which runs it on a small
thread pool; each pool thread keeps one persistent connection. The runner uses two pools (event
writes on one thread, everything else on `--db-threads` − 1), its LISTEN connection, and one for
its webhook sender (webhooks.sender): `--db-threads` + 2 connections per runner process (5 by
default), however many runs it executes.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connection

from arkloop import otel

T = TypeVar("T")
DEFAULT_THREADS = 3


def _guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except (InterfaceError, OperationalError):
        # A broken connection stays broken: drop it so this thread's next call reconnects.
        if connection.connection is not None and not connection.in_atomic_block:
            connection.close()
        raise


class Db:
    def __init__(self, threads: int = DEFAULT_THREADS) -> None:
        self.threads = threads
        self._started = 0  # pool threads are created on demand and live until shutdown
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="arkloop-db",
                                        initializer=self._thread_started)

    def _thread_started(self) -> None:
        with self._lock:
            self._started += 1

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` (sync, may use the ORM) on a pool thread."""
        loop = asyncio.get_running_loop()
        call = functools.partial(_guarded, fn, *args, **kwargs)
        if otel.ENABLED:  # the query's span joins the caller's (the run's) trace
            call = functools.partial(contextvars.copy_context().run, call)
        return await loop.run_in_executor(self._pool, call)

    def close(self) -> None:
        """Close every pool thread's connection, then the pool (a barrier puts one task on each thread)."""
        started = self._started
        if not started:
            self._pool.shutdown(wait=True)
            return
        barrier = threading.Barrier(started)

        def close_here() -> None:
            try:
                barrier.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass
            connection.close()

        for future in [self._pool.submit(close_here) for _ in range(started)]:
            future.result()
        self._pool.shutdown(wait=True)
