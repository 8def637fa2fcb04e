"""The runner process: claims runs, executes many agent loops at once, renews leases, stops cleanly.

One asyncio event loop per process. Runs are tasks; the database is reached through a small
thread pool (`arkloop.db_threads.DbThreads`) and one group-commit event writer (`writer.EventWriter`); PostgreSQL
wake-ups arrive on one LISTEN connection (`runs.listen`), SQLite is polled every 100 ms. Each
pass of the main loop is a small method (`claim_pass`, `renew_pass`, `cancel_pass`,
`sweep_pass`) that tests can call on their own.

A run's task ends with an `Outcome` (loop.py). The runner stops a task by cancelling it, after
recording why (`StopReason`), and then writes what that reason calls for (`_interrupted`).
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection

from arkloop.db_threads import DbThreads
from runs.events import EventRejected
from runs.listen import listen_forever
from runs.notify import WEBHOOKS_CHANNEL, WORK_CHANNEL
from runs.runner import leases, recovery, telemetry
from runs.runner.leases import Claim, interruption_ends_run
from runs.runner.loop import AgentLoop, Outcome
from runs.runner.state import RestartReason
from runs.runner.writer import EventsUnstorable, EventWriter
from webhooks.sender import WebhookSender

log = logging.getLogger("runs.runner")
SQLITE_POLL_SECONDS = 0.1
POSTGRES_POLL_SECONDS = 1.0  # a safety net only: NOTIFY wakes the runner, expired leases need a clock
SWEEP_SECONDS = 5.0
DB_DOWN_BACKOFF_SECONDS = (0.2, 5.0)  # first and longest pause between passes while the database fails
# Errors that say "the connection or the transaction broke", not "this run is wrong": the run is
# restarted from its log (an interruption: the third one fails it), not failed at once.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)
# How operators (and the fault tests) find the runner's LISTEN connection in pg_stat_activity.
LISTEN_APPLICATION_NAME = "arkloop-runner-listen"
# Database threads (connections) for run work: one writes events, the others do everything else.
DEFAULT_THREADS = 3


class StopReason(StrEnum):
    """Why the runner stopped a run's task (recorded before the task is cancelled)."""

    CANCEL = "cancel"          # the user cancelled the run: write run.cancelled
    LOST = "lost"              # its lease was taken over: write nothing more
    SHUTDOWN = "shutdown"      # SIGTERM and the grace period is over: release it
    DB_ERROR = "db_error"      # the database failed (its writes may be lost): restart it from its log
    UNSTORABLE = "unstorable"  # the database refuses this run's events: fail it


@dataclass
class _Handle:
    claim: Claim
    task: asyncio.Task
    stop_reason: StopReason | None = None


class Worker:
    def __init__(self, *, concurrency: int = 16, lease_seconds: float | None = None, grace: float = 10.0,
                 db_threads: int = DEFAULT_THREADS, owner: str | None = None,
                 slots_per_org: int | None = None) -> None:
        self.concurrency = concurrency
        # Runs of one org executed at once: by default half the slots, so two orgs can fill the
        # runner but one cannot, and any third org's run starts at the next free slot.
        self.slots_per_org = slots_per_org or settings.ARKLOOP_RUNNER_SLOTS_PER_ORG or max(1, concurrency // 2)
        self.lease_seconds = lease_seconds or settings.ARKLOOP_LEASE_SECONDS
        self.grace = grace
        self.db_threads = db_threads
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.active: dict[str, _Handle] = {}
        self.stopping = False
        self.postgres = connection.vendor == "postgresql"

    # --- lifecycle --------------------------------------------------------------------------------

    async def run(self, *, once: bool = False) -> None:
        """Work until `stop()` (SIGTERM); with `once`, until nothing is runnable and nothing is active."""
        self._wake = asyncio.Event()
        telemetry.track_slots(self)
        # Event writes get a connection of their own, so deltas never queue behind claims and
        # context loads (200 runs claimed at once mean ~1,000 queries); the rest share the others.
        self.db = DbThreads(max(1, self.db_threads - 1), name="runner-db")
        self.write_db = DbThreads(1, name="runner-writes")
        self.writer = EventWriter(self.write_db, on_rejected=self._on_rejected, on_error=self._on_write_failed,
                                  on_unstorable=self._on_unstorable)
        # Webhook deliveries are sent from here too (own DB connection, bounded per endpoint).
        self.webhooks = WebhookSender(owner=self.owner, lease_seconds=self.lease_seconds,
                                      on_outcome=telemetry.webhook_attempted)
        background = [asyncio.create_task(self.writer.run_forever()), asyncio.create_task(self._renew_forever()),
                      asyncio.create_task(self.webhooks.run_forever())]
        if self.postgres:
            background.append(asyncio.create_task(listen_forever(
                channels=(WORK_CHANNEL, WEBHOOKS_CHANNEL), application_name=LISTEN_APPLICATION_NAME,
                on_notify=self._on_notify, on_connect=self._on_listen_connect)))
        log.info("runner %s started (concurrency %d, %d per org, lease %.1fs)", self.owner, self.concurrency,
                 self.slots_per_org, self.lease_seconds)
        try:
            await self._main(once)
        finally:
            await self._shutdown(background)

    def stop(self) -> None:
        """Stop claiming; in-flight runs get the grace period (SIGTERM)."""
        if not self.stopping:
            log.info("runner %s stopping: no new claims, %d runs in flight", self.owner, len(self.active))
        self.stopping = True
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def _main(self, once: bool) -> None:
        next_sweep, backoff = 0.0, DB_DOWN_BACKOFF_SECONDS[0]
        while not self.stopping:
            try:
                claimed = await self.claim_pass()
                if once and not claimed and not self.active:
                    return
                if time.monotonic() >= next_sweep:
                    await self.sweep_pass()
                    next_sweep = time.monotonic() + SWEEP_SECONDS
                await self._sleep()
                await self.cancel_pass()
            except DatabaseError as exc:
                # The database restarted or dropped us: keep the process, retry with backoff.
                log.warning("runner %s: database unavailable (%s); retrying in %.1fs", self.owner, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, DB_DOWN_BACKOFF_SECONDS[1])
            else:
                backoff = DB_DOWN_BACKOFF_SECONDS[0]

    async def _sleep(self) -> None:
        timeout = POSTGRES_POLL_SECONDS if self.postgres else SQLITE_POLL_SECONDS
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _shutdown(self, background: list[asyncio.Task]) -> None:
        self.stopping = True
        tasks = [handle.task for handle in self.active.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=self.grace)
        for handle in list(self.active.values()):
            self._interrupt(handle, StopReason.SHUTDOWN)
        await asyncio.gather(*(h.task for h in list(self.active.values())), return_exceptions=True)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self.db.close)
        await asyncio.get_running_loop().run_in_executor(None, self.write_db.close)
        log.info("runner %s stopped", self.owner)

    # --- passes -----------------------------------------------------------------------------------

    async def claim_pass(self) -> int:
        """Claim as many runnable runs as there is room for (fairly between orgs) and start them;
        returns how many."""
        room = self.concurrency - len(self.active)
        if self.stopping or room <= 0:
            return 0
        held = Counter(handle.claim.org_id for handle in self.active.values())
        claims = await self.db.call(leases.runs_claim, owner=self.owner, limit=room, lease_seconds=self.lease_seconds,
                                    held=held, slots_per_org=self.slots_per_org)
        for claim in claims:
            self._start(claim)
        return len(claims)

    async def renew_pass(self) -> None:
        held = {run_id: handle.claim.attempt for run_id, handle in self.active.items()}
        if held:
            lost = await self.db.call(leases.leases_renew, owner=self.owner, held=held,
                                      lease_seconds=self.lease_seconds)
            for run_id in lost:
                self._on_rejected(run_id, "lease_lost", held[run_id])

    async def cancel_pass(self) -> None:
        """Poll for cancel requests (SQLite has no NOTIFY; on PostgreSQL a cheap safety net)."""
        if self.active:
            for run_id in await self.db.call(leases.runs_cancelling, owner=self.owner):
                if run_id in self.active:
                    self._interrupt(self.active[run_id], StopReason.CANCEL)

    async def sweep_pass(self) -> None:
        for run_id in await self.db.call(recovery.runs_fail_timed_out_inputs):
            telemetry.run_finished(status="failed", error_class="input.timeout")
            log.info("run %s failed (input.timeout)", run_id)

    async def _renew_forever(self) -> None:
        pause = self.lease_seconds / 3
        while True:
            await asyncio.sleep(pause)
            try:
                await self.renew_pass()
                pause = self.lease_seconds / 3
            except Exception as exc:
                # Soon again, on a fresh connection: two missed renewals would lose the leases.
                log.warning("renewing leases failed (%s); retrying", exc)
                pause = min(0.2, self.lease_seconds / 10)

    # --- one run ----------------------------------------------------------------------------------

    def _start(self, claim: Claim) -> None:
        stale = self.active.get(claim.run_id)
        if stale is not None:
            # Our own lease expired under a live task (renewals failed: the database was away).
            # That task is fenced now; stop it and start the new claim once it is gone.
            self._interrupt(stale, StopReason.LOST)
            stale.task.add_done_callback(lambda _: self._start(claim))
            return
        if claim.previous_owner == self.owner:
            # Not a lost runner (that is what worker.lost counts): resume as after a release.
            claim.previous_owner = ""
        kind = "took over" if claim.previous_owner else "claimed"
        log.info("run %s %s (attempt %d, %s)", claim.run_id, kind, claim.attempt, claim.status)
        handle = _Handle(claim=claim, task=None)  # type: ignore[arg-type]
        self.active[claim.run_id] = handle
        handle.task = asyncio.create_task(self._execute(handle), name=f"run-{claim.run_id}")

    async def _execute(self, handle: _Handle) -> None:
        agent = AgentLoop(claim=handle.claim, db=self.db, writer=self.writer)
        detail = ""
        try:
            outcome = await agent.execute()
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()
            outcome, detail = await self._interrupted(handle, agent)
        except EventRejected as exc:
            outcome, detail = Outcome.ABANDONED, exc.reason
        except EventsUnstorable:
            handle.stop_reason = StopReason.UNSTORABLE  # no second interruption while failing it
            outcome, detail = await self._failed(agent, "the run's output could not be stored")
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("run %s: database error (%s); restarting it from its log", handle.claim.run_id, exc)
            handle.stop_reason = StopReason.DB_ERROR
            outcome, detail = await self._restart(handle, agent)
        except Exception:
            log.exception("run %s crashed", handle.claim.run_id)
            outcome, detail = await self._failed(agent, "the runner hit an unexpected error")
        finally:
            self.active.pop(handle.claim.run_id, None)
            self.writer.forget(handle.claim.run_id, handle.claim.attempt)
            self.wake()  # room for another claim
        log.info("run %s %s%s (attempt %d)", handle.claim.run_id, outcome, f" ({detail})" if detail else "",
                 handle.claim.attempt)

    async def _interrupted(self, handle: _Handle, agent: AgentLoop) -> tuple[Outcome, str]:
        """Write what the reason the task was stopped for calls for."""
        try:
            match handle.stop_reason:
                case StopReason.CANCEL:
                    return await agent.cancel("cancel_requested"), ""
                case StopReason.SHUTDOWN:
                    await self._write_pending(agent)
                    return await self._release(handle)
                case StopReason.DB_ERROR:
                    return await self._restart(handle, agent)
                case StopReason.UNSTORABLE:
                    return await self._failed(agent, "the run's output could not be stored")
        except EventRejected as exc:
            return Outcome.ABANDONED, exc.reason
        return Outcome.ABANDONED, "lease_lost"

    async def _write_pending(self, agent: AgentLoop) -> None:
        """A final turn the loop holds for the run's completion is written before a release; if that
        fails (its deltas or the write), it stays partial and the next claim redoes it, as after any
        lost write. A refusal (lease lost, run finished) is the caller's: no release then."""
        try:
            await agent.write_pending()
        except EventRejected:
            raise
        except Exception as exc:
            log.warning("run %s: its final turn could not be written before the release (%s)", agent.claim.run_id, exc)

    async def _restart(self, handle: _Handle, agent: AgentLoop) -> tuple[Outcome, str]:
        """The database failed the run (its writes may be lost): an interruption. Give it back with
        `run.restarted database_error`, so the next claim resumes it from its log, or fail it if this
        was its last allowed interruption."""
        if interruption_ends_run(agent.restarts):
            return await self._failed(agent, "the database failed the run too many times")
        return await self._release(handle, restart_reason=RestartReason.DATABASE_ERROR)

    async def _release(self, handle: _Handle, *, restart_reason: str | None = None) -> tuple[Outcome, str]:
        """Give the run back so the next claim resumes it from its log; if even that fails, the lease
        expires and a claim does the same (then counted as a lost runner)."""
        claim = handle.claim
        for pause in (0.2, 0.5, 1.0):  # a terminated connection is replaced on the next call
            try:
                released = await self.db.call(leases.lease_release, run_id=claim.run_id, attempt=claim.attempt,
                                              owner=self.owner, restart_reason=restart_reason)
                return (Outcome.RELEASED, restart_reason or "") if released else (Outcome.ABANDONED, "lease_lost")
            except DatabaseError:
                await asyncio.sleep(pause)
        return Outcome.ABANDONED, "database unavailable; the lease will expire"

    async def _failed(self, agent: AgentLoop, message: str) -> tuple[Outcome, str]:
        try:
            return await agent.fail("internal.error", message), ""
        except Exception:
            return Outcome.ABANDONED, "could not record the failure"

    def _interrupt(self, handle: _Handle, reason: StopReason) -> None:
        if handle.stop_reason is None:
            handle.stop_reason = reason
            handle.task.cancel()

    def _on_rejected(self, run_id: str, reason: str, attempt: int) -> None:
        """A write was refused: the lease was taken over (or the run ended); drop the run quietly."""
        handle = self._handle(run_id, attempt)
        if handle is not None:
            log.info("run %s: write refused (%s), dropping it", run_id, reason)
            self._interrupt(handle, StopReason.LOST)

    def _on_write_failed(self, run_id: str, attempt: int) -> None:
        """Events of the run may be lost (the database failed): restart it from its log."""
        if (handle := self._handle(run_id, attempt)) is not None:
            self._interrupt(handle, StopReason.DB_ERROR)

    def _on_unstorable(self, run_id: str, attempt: int) -> None:
        """The database refuses this run's events: fail it (the other runs of the batch went on)."""
        if (handle := self._handle(run_id, attempt)) is not None:
            self._interrupt(handle, StopReason.UNSTORABLE)

    def _handle(self, run_id: str, attempt: int) -> _Handle | None:
        """The task executing this attempt of the run (not a later claim of ours), if any."""
        handle = self.active.get(run_id)
        return handle if handle is not None and handle.claim.attempt == attempt else None

    def _on_listen_connect(self) -> None:
        """(Re)connected: look for whatever was missed while not listening."""
        self.wake()
        self.webhooks.wake()

    def _on_notify(self, channel: str, payload: str) -> None:
        """`arkloop_work` payloads are `<run_id>:<event type>`; `arkloop_webhooks` ones are empty."""
        if channel == WEBHOOKS_CHANNEL:
            self.webhooks.wake()
            return
        run_id, _, type = payload.partition(":")
        if type == "run.cancel_requested" and run_id in self.active:
            self._interrupt(self.active[run_id], StopReason.CANCEL)
        elif type in ("run.started", "run.input_provided"):
            self.wake()
