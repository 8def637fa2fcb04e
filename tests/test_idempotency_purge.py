"""`purge_events` also drops Idempotency-Key records past their 24-hour replay window."""
from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.utils import timezone

from arkloop.models import IdempotencyRecord


def record(key: str, age: timedelta) -> IdempotencyRecord:
    made = IdempotencyRecord.objects.create(principal="m:x", key=key, method="POST", path="/v1/threads",
                                            body_hash="0" * 64, status_code=201)
    IdempotencyRecord.objects.filter(pk=made.pk).update(created_at=timezone.now() - age)
    return made


def test_purge_events_deletes_expired_idempotency_records_only(db):
    record("old", timedelta(hours=25))
    fresh = record("fresh", timedelta(hours=1))
    out = StringIO()
    call_command("purge_events", "--older-than", "30", stdout=out)
    assert "deleted 1 expired Idempotency-Key records" in out.getvalue()
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [fresh.pk]


def test_dry_run_deletes_no_idempotency_record(db):
    record("old", timedelta(hours=25))
    call_command("purge_events", "--older-than", "30", "--dry-run", stdout=StringIO())
    assert IdempotencyRecord.objects.count() == 1
