"""`python manage.py runagents [--concurrency N] [--once] [--grace SECONDS] [--metrics-port N]`: the runner
process (it also sends the webhook deliveries: webhooks.sender)."""
from __future__ import annotations

import asyncio
import logging
import signal

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arkloop import otel
from arkloop.metrics import serve_runner_metrics
from runs.runner.worker import DEFAULT_THREADS, Worker


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
        parser.add_argument("--metrics-port", type=int, default=None,
                            help="serve the runner's Prometheus metrics on this port (ARKLOOP_METRICS_TOKEN applies)")
        parser.add_argument("--metrics-addr", default="0.0.0.0",
                            help="address the metrics port listens on (default 0.0.0.0)")

    def handle(self, *args, **options) -> None:
        # One log line per run state change: the SDKs' per-request lines would drown them.
        # (httpx logs every request URL, and a webhook URL may carry a token.)
        for name in ("httpx", "httpx2", "httpcore", "openai", "anthropic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        worker = Worker(concurrency=max(1, options["concurrency"]), grace=options["grace"],
                        db_threads=max(1, options["db_threads"]))
        otel.configure(service_name="arkloop-runner")
        if options["metrics_port"] is not None:
            self._serve_metrics(options["metrics_addr"], options["metrics_port"])
        asyncio.run(self._serve(worker, once=options["once"]))

    def _serve_metrics(self, addr: str, port: int) -> None:
        if not 0 <= port <= 65535:
            raise CommandError(f"--metrics-port must be a port number, not {port}")
        try:
            server = serve_runner_metrics(addr=addr, port=port)
        except OSError as exc:
            raise CommandError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from None
        logging.getLogger("runs.runner").info("runner metrics on http://%s:%d/metrics", addr, server.server_port)

    async def _serve(self, worker: Worker, *, once: bool) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run(once=once)
