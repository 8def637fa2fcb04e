"""`manage.py tail_run RUN_ID`: print a run's events as the SSE stream sends them, following it live."""
from __future__ import annotations

import os
import sys
import time
import uuid

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from runs.models import TERMINAL_EVENT_STATUS, TERMINAL_STATUSES, Run, RunEvent
from runs.stream.sse import render_frame, rfc3339
from runs.timeline import event_summary, events_after

POLL_SECONDS = 0.25


class Command(BaseCommand):
    help = ("Print the events of run RUN_ID in order, formatted as the SSE stream sends them "
            "(id/event/data lines), or one summary line each with --format text. Keeps following "
            "new events until the run's terminal event, then exits 0; --no-follow prints what exists "
            "and exits.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", metavar="RUN_ID", help="the run's id (a UUID)")
        parser.add_argument("--after-seq", type=int, default=0, metavar="N",
                            help="start after event N (default 0: from the first event)")
        parser.add_argument("--no-follow", action="store_true", help="print the events so far and exit")
        parser.add_argument("--format", choices=("sse", "text"), default="sse", dest="output_format",
                            help="sse (default): like the event stream; text: seq, time, type, summary")
        parser.add_argument("--interval", type=float, default=POLL_SECONDS, metavar="SECONDS",
                            help=f"how often to look for new events (default {POLL_SECONDS})")

    def handle(self, *args, run_id: str, after_seq: int, no_follow: bool, output_format: str,
               interval: float, **options) -> None:
        if after_seq < 0:
            raise CommandError("--after-seq must be 0 or more")
        if interval <= 0:
            raise CommandError("--interval must be more than 0 seconds")
        run = self.access_run(run_id)
        self.output_format = output_format
        try:
            self.follow(run, after_seq=after_seq, follow=not no_follow, interval=interval)
        except KeyboardInterrupt:
            self.stderr.write("stopped")
        except BrokenPipeError:  # the reader went away (`tail_run … | head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def access_run(self, run_id: str) -> Run:
        try:
            wanted = uuid.UUID(run_id)
        except ValueError:
            raise CommandError(f"not a run id (expected a UUID): {run_id!r}") from None
        run = Run.objects.filter(pk=wanted).first()
        if run is None:
            raise CommandError(f"run {wanted} not found")
        return run

    def follow(self, run: Run, *, after_seq: int, follow: bool, interval: float) -> None:
        """Print batches of new events until the terminal one (or, without follow, the last one)."""
        cursor = after_seq
        while True:
            # Read the status before the events: if it was terminal then, every event exists now.
            finished = Run.objects.filter(pk=run.pk, status__in=TERMINAL_STATUSES).exists()
            events = events_after(run_id=run.pk, after_seq=cursor)
            for event in events:
                self.print_event(event)
                cursor = event.seq
                if event.type in TERMINAL_EVENT_STATUS:
                    return
            if not follow or (finished and not events):
                return
            if not events:
                close_old_connections()
                time.sleep(interval)

    def print_event(self, event: RunEvent) -> None:
        if self.output_format == "text":
            self.stdout.write(f"{event.seq:>5}  {rfc3339(event.created_at)}  {event.type:<22} "
                              f"{event_summary(type=event.type, data=event.data)}")
        else:  # the very bytes the SSE endpoint sends for this event
            frame = render_frame(run_id=str(event.run_id), seq=event.seq, type=event.type, data=event.data,
                                 created_at=event.created_at)
            self.stdout.write(frame.body.decode(), ending="")
        self.stdout.flush()
