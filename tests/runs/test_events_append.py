"""`events_append`: several events of one run in one write (on PostgreSQL one statement) keep
`event_append`'s rules — consecutive seqs, fencing by attempt, nothing after the terminal event,
cleaned text, the Run columns, the wake-ups after commit."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from runs import notify
from runs.events import EventRejected, events_append
from runs.models import Run, RunEvent, RunStatus
from tests.conftest import make_actor
from tests.runs.stories import finish, start_run, thread_with_question


def _log(run_id: str) -> list[tuple[int, str, dict]]:
    return list(RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("seq", "type", "data"))


def test_a_turn_and_the_completion_get_consecutive_seqs_and_set_the_run(alice):
    run_id = start_run(alice, thread_with_question(alice))
    Run.objects.filter(pk=run_id).update(attempt=3, total_input_tokens=5, total_cost_usd=Decimal("0.5"))
    trace_id = Run.objects.get(pk=run_id).trace_id
    appended = events_append(run_id=run_id, attempt=3, events=[
        ("llm.turn.completed", {"usage": {"input_tokens": 2}, "note": "a\x00b"}),
        ("run.completed", {"message_id": "m"})],
        fields={"error_class": "x\ud800"}, increments={"total_input_tokens": 2, "total_cost_usd": Decimal("0.25")})
    assert [(event.seq, event.type) for event in appended] == [(2, "llm.turn.completed"), (3, "run.completed")]
    assert _log(run_id)[1:] == [
        (2, "llm.turn.completed", {"usage": {"input_tokens": 2}, "note": "a\ufffdb", "trace_id": trace_id}),
        (3, "run.completed", {"message_id": "m", "trace_id": trace_id})]
    assert [event.data for event in appended] == [data for _, _, data in _log(run_id)[1:]]
    run = Run.objects.get(pk=run_id)
    assert (run.last_seq, run.status, run.lease_owner, run.error_class) == (3, RunStatus.COMPLETED, "", "x\ufffd")
    assert (run.total_input_tokens, run.total_cost_usd) == (7, Decimal("0.75"))
    assert run.completed_at is not None and run.lease_expires_at is None


@pytest.mark.parametrize("attempt, reason", [(2, "lease_lost"), (None, "finished")])
def test_a_refused_write_leaves_the_run_and_its_log_alone(alice, attempt, reason):
    run_id = start_run(alice, thread_with_question(alice))
    Run.objects.filter(pk=run_id).update(attempt=3)
    if reason == "finished":
        finish(run_id)
    before = (Run.objects.filter(pk=run_id).values_list("last_seq", "status", "total_input_tokens").get(),
              _log(run_id))
    with pytest.raises(EventRejected) as refused:
        events_append(run_id=run_id, attempt=attempt, events=[("llm.turn.completed", {}), ("run.failed", {})],
                      increments={"total_input_tokens": 9})
    assert refused.value.reason == reason
    assert (Run.objects.filter(pk=run_id).values_list("last_seq", "status", "total_input_tokens").get(),
            _log(run_id)) == before


def test_the_wake_ups_come_once_per_event_after_the_commit(transactional_db):
    alice = make_actor(org="acme", email="alice@acme.test", role="admin")
    run_id = start_run(alice, thread_with_question(alice))
    heard = []

    def hook(*event):
        heard.append(event)

    notify.add_hook(hook)
    try:
        with transaction.atomic():
            events_append(run_id=run_id, events=[("message.delta", {"content": "a"}), ("run.cancelled", {})])
            assert heard == []
    finally:
        notify.remove_hook(hook)
    assert heard == [(run_id, 2, "message.delta"), (run_id, 3, "run.cancelled")]
