"""`python manage.py runagents [--concurrency N] [--once] [--grace SECONDS]`: the runner process
(it also sends the webhook deliveries: webhooks.sender)."""
from __future__ import annotations

import asyncio
import logging
import signal

from django.core.management.base import BaseCommand, CommandParser

from runs.runner.db import DEFAULT_THREADS
from runs.runner.worker import Worker


class Command(BaseCommand):
    help = "Claim runs and execute their agent loops until SIGTERM (or, with --once, until idle)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, default=16, help="runs executed at once (default 16)")
        parser.add_argument("--once", action="store_true", help="exit when nothing is runnable and nothing runs")
        parser.add_argument("--grace", type=float, default=10.0,
                            help="seconds in-flight runs get to finish after SIGTERM before they are released")
        parser.add_argument("--db-threads", type=int, default=DEFAULT_THREADS,
                            help=f"database connections for run work (default {DEFAULT_THREADS}; +1 for LISTEN, "
                                 "+1 for the webhook sender)")

    def handle(self, *args, **options) -> None:
        # One log line per run state change: the SDKs' per-request lines would drown them.
        # (httpx logs every request URL, and a webhook URL may carry a token.)
        for name in ("httpx", "httpx2", "httpcore", "openai", "anthropic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        worker = Worker(concurrency=max(1, options["concurrency"]), grace=options["grace"],
                        db_threads=max(1, options["db_threads"]))
        asyncio.run(self._serve(worker, once=options["once"]))

    async def _serve(self, worker: Worker, *, once: bool) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run(once=once)
