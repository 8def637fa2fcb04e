"""`python manage.py sync_personas`: load the built-in personas from their YAML files."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from personas.builtins import (
    BUILTIN_DIR,
    SpecError,
    SyncOutcome,
    builtin_personas_sync,
    builtin_routes_ensure,
    load_persona_specs,
)
from personas.models import Persona, Route

ADVICE = {
    "edited_without_version_bump": "NOT APPLIED: the YAML changed but its version did not; "
                                   "give it a new `version` to publish the change",
    "conflict": "NOT APPLIED: a platform persona with this key@version exists and is not a built-in",
    "missing": "would be created",
}


class Command(BaseCommand):
    help = ("Create the built-in personas of personas/builtin/*.yaml that are not in the database yet "
            "(and the built-in `stub` route). Idempotent. An existing key@version is never rewritten: "
            "a YAML edited without a new `version` is reported and not applied. Older versions stay "
            "runnable as key@version; a bare key resolves to the newest active version.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dir", type=Path, default=BUILTIN_DIR,
                            help=f"folder of persona YAML files (default: {BUILTIN_DIR})")
        parser.add_argument("--check", action="store_true",
                            help="write nothing; exit with status 1 if anything is missing or not applicable")

    def handle(self, *args, dir: Path, check: bool, **options) -> None:
        try:
            specs = load_persona_specs(dir)
        except SpecError as exc:
            raise CommandError(str(exc)) from None
        with transaction.atomic():
            route_created = False if check else builtin_routes_ensure(route_model=Route)
            outcomes = builtin_personas_sync(persona_model=Persona, specs=specs, apply=not check)
        if route_created:
            self.stdout.write(self.style.SUCCESS("created    route stub"))
        for outcome in outcomes:
            self._report(outcome)
        self._summarize(outcomes, check)

    def _report(self, outcome: SyncOutcome) -> None:
        line = f"{outcome.status:<10} {outcome.persona_id:<24} ({outcome.path.name})"
        if outcome.status in ("created", "unchanged"):
            self.stdout.write(self.style.SUCCESS(line) if outcome.applied else line)
        else:
            self.stderr.write(self.style.WARNING(f"{line}: {ADVICE[outcome.status]}"))

    def _summarize(self, outcomes: list[SyncOutcome], check: bool) -> None:
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        detail = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items()))
        self.stdout.write(f"{len(outcomes)} built-in persona(s): {detail or 'none found'}")
        if check and any(o.status != "unchanged" for o in outcomes):
            raise CommandError("built-in personas are not in sync with their YAML files")
