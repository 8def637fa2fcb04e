"""`manage.py usage_report --since DATE`: runs, tokens, cost and credits per day, org or model."""
from __future__ import annotations

import csv
import datetime as dt

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from runs.usage import GROUPINGS, UsageRow, runs_in_period, usage_by, usage_per_day, usage_totals

COLUMNS = ("runs", "input_tokens", "output_tokens", "cost_usd", "credits")


def parse_date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be a date as YYYY-MM-DD, not {value!r}") from None


class Command(BaseCommand):
    help = ("Print usage (runs, input and output tokens, cost in USD, credits) of the runs created "
            "from --since through --until (UTC days, both included), grouped by day, org or model, "
            "with a total; as an aligned table or as CSV.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, metavar="DATE", help="first day, YYYY-MM-DD")
        parser.add_argument("--until", metavar="DATE", help="last day, YYYY-MM-DD (default: today, UTC)")
        parser.add_argument("--by", choices=GROUPINGS, default="day", help="grouping (default: day)")
        parser.add_argument("--format", choices=("table", "csv"), default="table", dest="output_format",
                            help="table (default) or csv")

    def handle(self, *args, since: str, until: str | None, by: str, output_format: str, **options) -> None:
        first = parse_date(since, "--since")
        last = parse_date(until, "--until") if until else timezone.now().date()
        if first > last:
            raise CommandError(f"--since {first} is after --until {last}")
        runs = runs_in_period(since=first, until=last)
        rows = usage_per_day(runs=runs, since=first, until=last) if by == "day" else usage_by(runs=runs, by=by)
        total = usage_totals(runs=runs)
        if output_format == "csv":
            self.write_csv(by, rows, total)
        else:
            self.write_table(by, rows, total)

    def write_csv(self, by: str, rows: list[UsageRow], total: UsageRow) -> None:
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow([by, *COLUMNS])
        for row in [*rows, total]:
            writer.writerow(cells(row))

    def write_table(self, by: str, rows: list[UsageRow], total: UsageRow) -> None:
        lines = [[by, *COLUMNS], *(cells(row) for row in rows), cells(total)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]

        def render(line: list[str]) -> str:
            return "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                             for i, cell in enumerate(line)).rstrip()

        rule = "  ".join("-" * width for width in widths)
        self.stdout.write(render(lines[0]))
        self.stdout.write(rule)
        for line in lines[1:-1]:
            self.stdout.write(render(line))
        self.stdout.write(rule)
        self.stdout.write(render(lines[-1]))


def cells(row: UsageRow) -> list[str]:
    return [row.key or "(none)", str(row.runs), str(row.input_tokens), str(row.output_tokens),
            f"{row.cost_usd:.6f}", str(row.credits)]
