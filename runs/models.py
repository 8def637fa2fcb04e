"""Runs (one execution of an agent loop over a thread) and their append-only event logs."""
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from arkloop.models import Org


class RunStatus(models.TextChoices):
    RUNNING = "running"
    WAITING_FOR_INPUT = "waiting_for_input"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (RunStatus.RUNNING, RunStatus.WAITING_FOR_INPUT, RunStatus.CANCELLING)
TERMINAL_STATUSES = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
TERMINAL_EVENT_STATUS = {
    "run.completed": RunStatus.COMPLETED,
    "run.failed": RunStatus.FAILED,
    "run.cancelled": RunStatus.CANCELLED,
}


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="runs")
    thread = models.ForeignKey("threads.Thread", on_delete=models.CASCADE, related_name="runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=24, choices=RunStatus.choices, default=RunStatus.RUNNING)
    persona_id = models.CharField(max_length=200, blank=True, default="")
    route_id = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    trace_id = models.CharField(max_length=32)

    total_input_tokens = models.BigIntegerField(default=0)
    total_output_tokens = models.BigIntegerField(default=0)
    total_cached_input_tokens = models.BigIntegerField(default=0)
    total_cost_usd = models.DecimalField(max_digits=18, decimal_places=8, default=Decimal("0"))
    credits_used = models.BigIntegerField(default=0)
    error_class = models.CharField(max_length=64, blank=True, default="")
    # The effective limits, fixed at creation (runs.limits): {name: value or None}.
    limits = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    # The event log's high-water mark: the next event gets last_seq + 1, under this row's lock.
    last_seq = models.BigIntegerField(default=0)
    # The runner's lease. `attempt` is the fencing token: a write carrying an older attempt is refused.
    attempt = models.PositiveIntegerField(default=0)
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    waiting_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["org", "-created_at", "-id"], name="run_org_created"),
            models.Index(fields=["thread", "-created_at", "-id"], name="run_thread_created"),
            models.Index(fields=["org", "created_by", "-created_at", "-id"], name="run_org_creator_created"),
            models.Index(fields=["status", "lease_expires_at"], name="run_status_lease",
                         condition=Q(status__in=ACTIVE_STATUSES)),
        ]
        constraints = [
            # At most one active run per thread, enforced by the database.
            models.UniqueConstraint(fields=["thread"], condition=Q(status__in=ACTIVE_STATUSES),
                                    name="run_one_active_per_thread"),
        ]

    def __str__(self) -> str:
        return f"run {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def duration_ms(self) -> int | None:
        ended = self.completed_at or self.failed_at or self.cancelled_at
        if ended is None:
            return None
        return int((ended - self.created_at).total_seconds() * 1000)

    @property
    def cache_hit_rate(self) -> float | None:
        if not self.total_input_tokens:
            return None
        return self.total_cached_input_tokens / self.total_input_tokens


class RunEvent(models.Model):
    """One step of a run. Append only through runs.events.event_append."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    type = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="runevent_run_seq_unique")]
        ordering = ["run", "seq"]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"
