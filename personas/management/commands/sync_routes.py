"""`python manage.py sync_routes [--file PATH]`: declare provider routes from a YAML file."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from personas.routes_file import RoutesFileError, load_route_specs
from personas.services import routes_sync


class Command(BaseCommand):
    help = ("Create or update the provider routes declared in a YAML file (default: ARKLOOP_ROUTES_FILE), "
            "all or nothing. Each route: id, provider (stub|openai|anthropic), model, base_url, api_key_env (an "
            "ARKLOOP_ROUTE_… variable) "
            "or api_key (stored encrypted, never printed), prices {input, cached_input, output} in USD per "
            "million tokens, priority, fallback (a route id), org (slug, or null for the platform), active. "
            "Routes not in the file are left alone. See docs/personas.md.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", type=Path, default=None,
                            help="the routes YAML file (default: the ARKLOOP_ROUTES_FILE setting)")

    def handle(self, *args, file: Path | None, **options) -> None:
        path = file or (Path(settings.ARKLOOP_ROUTES_FILE) if settings.ARKLOOP_ROUTES_FILE else None)
        if path is None:
            raise CommandError("no routes file: pass --file PATH or set ARKLOOP_ROUTES_FILE")
        try:
            outcomes = routes_sync(specs=load_route_specs(path))
        except RoutesFileError as exc:
            raise CommandError(str(exc)) from None
        for outcome in outcomes:
            changed = f" ({', '.join(outcome.changed)})" if outcome.changed else ""
            line = f"{outcome.status:<10} route {outcome.route_id}{changed}"
            self.stdout.write(line if outcome.status == "unchanged" else self.style.SUCCESS(line))
        self.stdout.write(f"{len(outcomes)} route(s) in {path}")
