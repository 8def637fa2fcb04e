"""Short database calls from async code, on a small dedicated thread pool.

Each call runs a plain synchronous function in one of `POOL_SIZE` threads and closes that thread's
connection before returning, so:
- a stream holds a database connection only while one of its queries runs (never while idle);
- a process opens at most `POOL_SIZE` connections for streaming, however many streams it serves.

Django's async ORM is not used here on purpose: under ASGI it runs queries in the request's
thread-sensitive thread and keeps that connection open until the response ends, i.e. for the
whole life of a stream.
"""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import connection

POOL_SIZE = 4
T = TypeVar("T")

_executor = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="arkloop-stream-db")


def _call_and_close(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    try:
        return fn(**kwargs)
    finally:
        connection.close()


async def db_call(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run `fn(**kwargs)` in the stream DB pool; its connection is closed when it returns."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(_call_and_close, fn, kwargs))
