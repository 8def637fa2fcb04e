"""`python manage.py reap_runs`: one recovery sweep, for cron (runners do the same continuously)."""
from __future__ import annotations

from django.core.management.base import BaseCommand

from runs.runner.recovery import runs_fail_timed_out_inputs, runs_reap_expired_leases


class Command(BaseCommand):
    help = ("Recover runs nobody drives: take expired leases from dead runners (run.restarted, or "
            "run.failed worker.lost after 3) and fail runs whose input timed out (input.timeout).")

    def handle(self, *args, **options) -> None:
        reaped = runs_reap_expired_leases()
        timed_out = runs_fail_timed_out_inputs()
        for run_id in reaped:
            self.stdout.write(f"run {run_id}: expired lease reclaimed")
        for run_id in timed_out:
            self.stdout.write(f"run {run_id}: failed (input.timeout)")
        self.stdout.write(f"reaped {len(reaped)} expired leases, failed {len(timed_out)} timed-out inputs")
