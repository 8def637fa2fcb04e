"""`python manage.py webhook_failures [--hours 24]`: the endpoints whose deliveries fail."""
from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from webhooks.selectors import webhooks_failing


class Command(BaseCommand):
    help = ("List webhooks with deliveries that failed within --hours (default 24) or are being retried, "
            "worst first, with the last error; exits 0 either way.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hours", type=float, default=24.0, help="how far back failed deliveries count")

    def handle(self, *args, **options) -> None:
        failing = webhooks_failing(since=timezone.now() - timedelta(hours=options["hours"]))
        for item in failing:
            webhook = item.webhook
            state = "enabled" if webhook.enabled else "DISABLED"
            self.stdout.write(f"{webhook.pk}  org={webhook.org.slug}  {state}  failed={item.failed}  "
                              f"retrying={item.retrying}  {webhook.url}")
            if item.last_error:
                self.stdout.write(f"    last error: {item.last_error}")
        self.stdout.write(f"{len(failing)} failing webhook(s)")
