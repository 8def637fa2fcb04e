"""The agent loop of one run: persona + conversation → model turns → tools → … → reply.

`AgentLoop.execute` resumes the run from its event log (see `state.py`) and drives it until it
completes, fails, or waits for the user; it returns the outcome for the runner's log line.
Every write carries the claim's `attempt`, so a loop whose lease was taken over is refused
(EventRejected) and the runner drops it. Cancellation arrives as `asyncio.CancelledError` from
the runner; the loop itself never catches it. The run's limits are checked before each provider
call and each tool (`budget.py`); its timeout interrupts whatever the loop awaits.
"""
from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.utils import timezone

from arkloop.db_threads import DbThreads
from arkloop.tracing import set_trace_id
from personas.models import Route
from runs.events import events_append
from runs.models import RunStatus
from runs.runner import costs, telemetry
from runs.runner.budget import Exceeded
from runs.runner.context import RunContext, context_load, route_selected_data
from runs.runner.leases import MAX_INTERRUPTIONS, Claim, interruption_ends_run, released
from runs.runner.providers.base import Entry, ProviderError, TextDelta, ToolCall, TurnRequest
from runs.runner.retry import TurnCaller, TurnOutput
from runs.runner.state import CallState, RestartReason, Turn
from runs.runner.toolbox import Toolbox
from runs.runner.tools import ASK_USER, ToolFailed, ask_user_prompt
from runs.runner.window import input_budget, window_fit
from runs.runner.writer import EventWriter
from runs.services import run_complete

APPROVALS = {"approve", "yes"}


class Outcome(StrEnum):
    """How one execution of a run ended; the runner logs it."""

    COMPLETED = "completed"
    FAILED = "failed"
    WAITING = "waiting"        # for the user's input; the run holds no lease meanwhile
    CANCELLED = "cancelled"
    RELEASED = "released"      # given back: the next claim resumes it from its log
    ABANDONED = "abandoned"    # dropped without a write (lease lost, or the database unreachable)


class AgentLoop:
    def __init__(self, *, claim: Claim, db: DbThreads, writer: EventWriter) -> None:
        self.claim = claim
        self.db = db
        self.writer = writer
        self.ctx: RunContext | None = None
        self.toolbox: Toolbox | None = None
        # A final turn's `llm.turn.completed` data and the totals it adds, held for the run's next
        # write (its completion, or whatever ends the run first) and written in the same statement.
        self._final_turn: tuple[dict[str, Any], dict[str, Any]] | None = None

    async def execute(self) -> Outcome:
        """Run until an outcome: completed, failed, waiting or cancelled."""
        self.ctx = await self.db.call(context_load, self.claim.run_id)
        persona = self.ctx.persona
        self.toolbox = Toolbox(tools=persona.tools, confirm_tools=persona.confirm_tools,
                               mcp_servers=self.ctx.mcp_servers)
        set_trace_id(self.ctx.run.trace_id)  # this task's log lines and spans are the run's trace
        with telemetry.run_span(self.ctx, attempt=self.claim.attempt):
            outcome = await self._begin()
            return outcome if outcome is not None else await self._drive_in_time()

    async def _begin(self) -> Outcome | None:
        """What a claim does before the loop: a requested cancel, a restart, an unusable persona or
        route, the first route."""
        if self.claim.status == RunStatus.CANCELLING:
            return await self.cancel("cancel_requested")
        if (outcome := await self._recover()) is not None:
            return outcome
        if self.ctx.problem:
            return await self.fail("internal.error", self.ctx.problem)
        if not self.ctx.log.route_id:
            await self._route_selected(self.ctx.routes[0])
        return None

    async def _drive_in_time(self) -> Outcome:
        """`_drive` until the run's timeout, which interrupts whatever it awaits."""
        deadline = self.ctx.budget.deadline(asyncio.get_running_loop().time())
        try:
            async with asyncio.timeout_at(deadline) as scope:
                return await self._drive()
        except _Finished as finished:
            return finished.outcome
        except TimeoutError:
            if not scope.expired():  # not ours: some call's own timeout
                raise
            # A final turn held for the completion was not committed in time: it stays partial, as
            # when the timeout interrupts a turn's own commit (unlike a cancel, which records it).
            self._final_turn = None
            return await self._over_budget(self.ctx.budget.timed_out())

    @property
    def restarts(self) -> int:
        """How many times the run was restarted so far (0 before its log is loaded)."""
        return self.ctx.log.restarts if self.ctx is not None else 0

    async def _recover(self) -> Outcome | None:
        """After a takeover (or a release mid-turn): mark the restart, or fail on the last interruption."""
        log = self.ctx.log
        if self.claim.previous_owner:
            if interruption_ends_run(log.restarts):
                return await self.fail("worker.lost", f"the run was interrupted {MAX_INTERRUPTIONS} times")
            await self._append("run.restarted", {"attempt": self.claim.attempt,
                                                   "reason": RestartReason.LEASE_EXPIRED})
            log.restarts += 1
        elif log.partial:
            await self._append("run.restarted", {"attempt": self.claim.attempt, "reason": RestartReason.RELEASED})
        log.partial = False
        return None

    async def _drive(self) -> Outcome:
        log = self.ctx.log
        while True:
            if log.turns and (outcome := await self._settle_tools(log.turns[-1])):
                return outcome
            last = log.turns[-1] if log.turns else None
            if last is not None and last.is_final:
                return await self._complete()
            if exceeded := self.ctx.budget.before_turn(log, self._routes_from_current()[0]):
                return await self._over_budget(exceeded)
            turn = await self._turn()
            if turn.ask is not None and turn.ask_input is None:
                return await self._wait({"kind": "question", "prompt": turn.ask})

    # --- one model turn -------------------------------------------------------------------------

    async def _turn(self) -> Turn:
        caller = TurnCaller(emit=self._emit_delta, on_retry=self._retry, on_route=self._route_selected)
        routes = self._routes_from_current()
        request = await self._request(routes[0])
        try:
            output = await caller.call(routes, request)
        except ProviderError as exc:
            await self.fail(exc.error_class, exc.message)
            raise _Finished(Outcome.FAILED) from None
        return await self._commit_turn(output)

    async def _request(self, route: Route) -> TurnRequest:
        """The next call: the prompt, the newest messages that fit the route's window (announcing
        what was left out), `max_tokens` capped by the run's budget, the built-in and MCP tools."""
        persona, log = self.ctx.persona, self.ctx.log
        tools = await self.toolbox.specs()
        max_tokens = self.ctx.budget.max_tokens(log, route, persona.max_output_tokens)
        room = input_budget(context_window=route.context_window, max_tokens=max_tokens,
                            system_prompt=persona.system_prompt, tools=tools)
        entries, dropped = window_fit(self._entries(), room)
        dropped += self.ctx.older_messages
        if dropped > log.dropped_messages:
            await self._append("run.context.truncated", {"dropped_messages": dropped})
            log.dropped_messages = dropped
        return TurnRequest(system_prompt=persona.system_prompt, entries=entries, tools=tools,
                           max_output_tokens=max_tokens, temperature=persona.temperature)

    def _entries(self) -> list[Entry]:
        entries = list(self.ctx.conversation)
        for turn in self.ctx.log.turns:
            entries.append(Entry("assistant", content=turn.text or (turn.ask or ""),
                                 tool_calls=[state.call for state in turn.calls]))
            entries += [Entry("tool", content=_outcome_text(s.outcome), tool_call_id=s.call.id, tool_name=s.call.name)
                        for s in turn.calls if s.outcome is not None]
            if turn.ask_input is not None:
                entries.append(Entry("user", content=turn.ask_input, is_input=True))
        return entries

    def _routes_from_current(self) -> list[Route]:
        """The chain from the route in use (after a fallback, later turns stay on the fallback)."""
        routes = self.ctx.routes
        current = self.ctx.log.route_id
        index = next((i for i, route in enumerate(routes) if route.pk == current), 0)
        return routes[index:]

    def _emit_delta(self, delta: TextDelta) -> None:
        if delta.channel == "thinking" and not self.ctx.persona.stream_thinking:
            return
        data: dict[str, Any] = {"content": delta.text, "role": "assistant"}
        if delta.channel:
            data["channel"] = delta.channel
        self.writer.append(self.claim.run_id, self.claim.attempt, "message.delta", data, mergeable=delta.mergeable)

    async def _retry(self, data: dict) -> None:
        await self._append("run.llm.retry", data)

    async def _route_selected(self, route: Route) -> None:
        await self._append("run.route.selected", route_selected_data(route),
                           fields={"route_id": route.pk, "model": route.model})
        self.ctx.log.route_id = route.pk

    async def _commit_turn(self, output: TurnOutput) -> Turn:
        """Write the turn's tool calls, then `llm.turn.completed` (the commit point) with its cost.

        A final turn (no tool call, no question) is committed with the run's next write instead —
        its completion, or whatever ends the run first — in the same statement: one write less.
        """
        turn = Turn(text=output.text, ask=output.ask)
        for call in output.calls:
            call.id = call.id or f"call_{len(self.ctx.log.turns)}_{len(turn.calls)}"
            turn.calls.append(CallState(call))
            self.writer.append(self.claim.run_id, self.claim.attempt, "tool.call",
                               {"tool_call_id": call.id, "tool_name": call.name, "arguments": call.arguments})
        usage, cost = output.usage, costs.turn_cost(output.usage, output.route)
        telemetry.turn_completed(route=output.route, usage=usage, cost=cost)
        data = {"usage": usage.as_dict(), "cost_usd": costs.cost_number(cost)}
        totals = {"total_input_tokens": usage.input_tokens, "total_output_tokens": usage.output_tokens,
                  "total_cached_input_tokens": usage.cached_input_tokens, "total_cost_usd": cost}
        if turn.is_final:
            self._final_turn = (data, totals)
        else:
            await self._append("llm.turn.completed", data, increments=totals)
        log = self.ctx.log
        log.turns.append(turn)
        for name in ("input_tokens", "output_tokens", "cached_input_tokens"):
            setattr(log.usage, name, getattr(log.usage, name) + getattr(usage, name))
        log.cost += Decimal(repr(costs.cost_number(cost)))
        return turn

    # --- tools ----------------------------------------------------------------------------------

    async def _settle_tools(self, turn: Turn) -> Outcome | None:
        """Give every tool call of the last turn an outcome; "waiting" when one needs the user."""
        for state in turn.calls:
            if state.outcome is None and (outcome := await self._settle(state)):
                return outcome
        return None

    async def _settle(self, state: CallState) -> Outcome | None:
        call = state.call
        if denied := self.toolbox.check(call.name):
            return await self._deny(state, denied)
        if state.input is not None:
            return await self._answered(state)
        if call.name == ASK_USER:
            return await self._wait({"kind": "question", "prompt": ask_user_prompt(call.arguments),
                                     **_call_fields(call)})
        plan = await self.toolbox.plan(call.name)
        if plan.failure is None and plan.confirm:
            return await self._wait({"kind": "tool_confirmation", "prompt": _confirm_prompt(call),
                                     **_call_fields(call)})
        return await self._execute(state, failure=plan.failure)

    async def _answered(self, state: CallState) -> Outcome | None:
        if state.call.name == ASK_USER:
            return await self._record(state, {"result": state.input})
        if state.input.strip().lower() in APPROVALS:
            return await self._execute(state)
        return await self._deny(state, "the user did not approve this tool call")

    async def _execute(self, state: CallState, *, failure: ToolFailed | None = None) -> Outcome | None:
        """Run the tool (or record the failure already known, e.g. its MCP server is unreachable) within
        the run's budget. An MCP call may take its server's timeout; a cancel or the run's timeout
        interrupts it."""
        if exceeded := self.ctx.budget.before_tool(self.ctx.log):
            return await self._over_budget(exceeded)
        span, outcome = telemetry.tool_started(state.call), None
        try:
            outcome = _error(failure) if failure is not None else await self._run(state.call)
        finally:
            telemetry.tool_ended(span, outcome)  # None: interrupted (a cancel, the run's timeout)
        self.ctx.log.tools_executed += 1
        return await self._record(state, outcome)

    async def _run(self, call: ToolCall) -> dict[str, Any]:
        try:
            return {"result": await self.toolbox.run(call.name, call.arguments)}
        except ToolFailed as exc:
            return _error(exc)

    async def _record(self, state: CallState, outcome: dict[str, Any]) -> None:
        data = {"tool_call_id": state.call.id, "tool_name": state.call.name, **outcome}
        await self.writer.write(self.claim.run_id, self.claim.attempt, "tool.result", data)
        state.outcome = outcome
        telemetry.tool_counted(state.call.name, "error" if "error" in outcome else "ok")

    async def _deny(self, state: CallState, reason: str) -> None:
        data = {"tool_call_id": state.call.id, "tool_name": state.call.name, "reason": reason}
        await self.writer.write(self.claim.run_id, self.claim.attempt, "tool.denied", data)
        state.outcome = {"denied": reason}
        telemetry.tool_counted(state.call.name, "denied")

    # --- outcomes ---------------------------------------------------------------------------------

    async def _wait(self, data: dict[str, Any]) -> Outcome:
        """Hand the run to the user: status waiting_for_input, lease released, nothing held."""
        await self._append("run.waiting_for_input", data, status=RunStatus.WAITING_FOR_INPUT,
                           fields={**released(), "waiting_since": timezone.now()})
        return Outcome.WAITING

    async def _complete(self) -> Outcome:
        await self._flush()
        log, turn = self.ctx.log, self._final_turn
        await self.db.call(run_complete, run_id=self.claim.run_id, attempt=self.claim.attempt,
                           thread_id=self.ctx.run.thread_id, reply=log.reply, usage=log.usage.as_dict(), cost=log.cost,
                           turn=turn[0] if turn is not None else None)
        self._final_turn = None  # only once written: a failure's run.failed (or a cancel) carries it
        telemetry.run_finished(status="completed")
        return Outcome.COMPLETED

    async def fail(self, error_class: str, message: str, *, limit: str | None = None) -> Outcome:
        data = {"error_class": error_class, "message": message, **({"limit": limit} if limit else {})}
        await self._append("run.failed", data, fields={"error_class": error_class})
        telemetry.run_finished(status="failed", error_class=error_class)
        return Outcome.FAILED

    async def _over_budget(self, exceeded: Exceeded) -> Outcome:
        return await self.fail("budget.exceeded", exceeded.message, limit=exceeded.limit)

    async def cancel(self, reason: str) -> Outcome:
        await self._append("run.cancelled", {"reason": reason})
        telemetry.run_finished(status="cancelled")
        return Outcome.CANCELLED

    async def _append(self, type: str, data: dict[str, Any], **kwargs: Any) -> None:
        """Write one event after the run's queued ones (keeps the order), fenced by our attempt; a
        final turn not written yet comes first (its totals were added to the log's already)."""
        await self._flush()
        events = [(type, data)]
        if self._final_turn is not None:
            turn, totals = self._final_turn
            events.insert(0, ("llm.turn.completed", turn))
            kwargs["increments"] = {**totals, **kwargs.get("increments", {})}
        await self.db.call(events_append, run_id=self.claim.run_id, events=events, attempt=self.claim.attempt, **kwargs)
        self._final_turn = None

    async def write_pending(self) -> None:
        """Write a final turn held for the run's completion, alone: before a release at shutdown, so
        the next claim finds the turn committed (as if it had been written at once) and does not
        call the model again."""
        if self._final_turn is not None:
            await self._flush()
            turn, totals = self._final_turn
            await self.db.call(events_append, run_id=self.claim.run_id, events=[("llm.turn.completed", turn)],
                               attempt=self.claim.attempt, increments=totals)
            self._final_turn = None

    async def _flush(self) -> None:
        """Wait until the run's queued events are committed. If one failed, a final turn held back
        is dropped with them — its commit must not outlive its deltas — and stays partial, as the
        log fold (state.py) has a turn without `llm.turn.completed`."""
        try:
            await self.writer.flush(self.claim.run_id, self.claim.attempt)
        except Exception:
            self._final_turn = None
            raise


class _Finished(Exception):
    """The loop ended early with an outcome already written."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


def _error(failure: ToolFailed) -> dict[str, Any]:
    return {"error": {"error_class": failure.error_class, "message": failure.message}}


def _call_fields(call: ToolCall) -> dict[str, Any]:
    return {"tool_call_id": call.id, "tool_name": call.name, "arguments": call.arguments}


def _confirm_prompt(call: ToolCall) -> str:
    return f"Allow the assistant to run {call.name} with {json.dumps(call.arguments)}? Answer approve or deny."


def _outcome_text(outcome: dict[str, Any]) -> str:
    """A tool outcome as the tool message the model reads."""
    if "denied" in outcome:
        return json.dumps({"denied": True, "reason": outcome["denied"]})
    if "error" in outcome:
        return json.dumps({"error": outcome["error"]})
    result = outcome.get("result")
    return result if isinstance(result, str) else json.dumps(result)
