"""`manage.py purge_events --older-than DAYS`: delete the event logs of long-finished runs."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arkloop.idempotency import idempotency_purge
from runs.maintenance import delete_in_batches, purgeable_events
from webhooks.services import purgeable_deliveries


class Command(BaseCommand):
    help = ("Delete the events of runs that finished (completed, failed or cancelled) more than DAYS "
            "days ago, in batches, with progress on stderr. Runs keep their status and totals (tokens, "
            "cost, credits) and threads keep their messages; active runs are never touched. Also deletes "
            "Idempotency-Key records past their 24-hour replay window, and webhook deliveries that are over "
            "(delivered or failed) and older than DAYS days; pending deliveries are kept.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS",
                            help="purge runs finished more than DAYS days ago (0 = any finished run)")
        parser.add_argument("--batch-size", type=int, default=1000, metavar="N",
                            help="events deleted per transaction (default 1000)")
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")

    def handle(self, *args, older_than: int, batch_size: int, dry_run: bool, **options) -> None:
        if older_than < 0:
            raise CommandError("--older-than must be 0 or more days")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        total = purgeable_events(older_than_days=older_than).count()
        if dry_run:
            self.stdout.write(f"would delete {total} events of runs finished more than {older_than} days ago")
            self.stdout.write(f"would delete {purgeable_deliveries(older_than_days=older_than).count()} finished "
                              f"webhook deliveries older than {older_than} days")
            return
        deleted = 0
        if total:
            deleted = delete_in_batches(purgeable_events(older_than_days=older_than), batch_size=batch_size,
                                        progress=lambda done: self.stderr.write(f"deleted {done}/{total} events"))
        self.stdout.write(f"deleted {deleted} events of runs finished more than {older_than} days ago")
        self.stdout.write(f"deleted {idempotency_purge()} expired Idempotency-Key records")
        purged = delete_in_batches(purgeable_deliveries(older_than_days=older_than), batch_size=batch_size)
        self.stdout.write(f"deleted {purged} finished webhook deliveries older than {older_than} days")
