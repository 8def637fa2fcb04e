"""Reads the stream needs: the run (with the visibility check), its events after a cursor, and the
latest seq of many runs at once (the SQLite poller's one cheap query).

They run on `stream_db`, STREAM_DB_THREADS threads shared by every stream and the hub of the
process: a stream holds no connection of its own, idle or not, and a process uses at most
STREAM_DB_THREADS connections for streaming (plus the hub's LISTEN connection), however many
streams it serves. They only read, so `stream_db.read` retries one on a broken connection."""
from __future__ import annotations

import uuid
from collections.abc import Iterable

from arkloop.authentication import Principal
from arkloop.db_threads import DbThreads
from runs.models import TERMINAL_STATUSES, Run, RunEvent
from runs.selectors import access_run
from runs.stream.sse import Frame, render_frame

BATCH_SIZE = 500
STREAM_DB_THREADS = 4
stream_db = DbThreads(STREAM_DB_THREADS, name="stream-db")


def access_run_for_stream(*, principal: Principal, run_id: str) -> tuple[uuid.UUID, bool]:
    """The run's id and whether it is finished; runs.not_found when the caller may not see it."""
    run = access_run(principal=principal, run_id=run_id)
    return run.pk, run.is_terminal


def run_is_finished(*, run_id: str) -> bool:
    return Run.objects.filter(pk=run_id, status__in=TERMINAL_STATUSES).exists()


def events_after(*, run_id: str, after_seq: int, upto: int | None = None,
                 limit: int = BATCH_SIZE) -> list[Frame]:
    """Up to `limit` rendered events of the run with after_seq < seq (≤ upto), in seq order."""
    events = RunEvent.objects.filter(run_id=run_id, seq__gt=after_seq)
    if upto is not None:
        events = events.filter(seq__lte=upto)
    rows = events.order_by("seq").values_list("seq", "type", "data", "created_at")[:limit]
    return [render_frame(run_id=run_id, seq=seq, type=type, data=data, created_at=created_at)
            for seq, type, data, created_at in rows]


def last_seqs(*, run_ids: Iterable[str]) -> dict[str, int]:
    """{run_id: last_seq} for the given runs (those that exist)."""
    rows = Run.objects.filter(pk__in=list(run_ids)).values_list("id", "last_seq")
    return {str(pk): last_seq for pk, last_seq in rows}
