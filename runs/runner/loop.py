"""The agent loop of one run: persona + conversation → model turns → tools → … → reply.

`AgentLoop.execute` resumes the run from its event log (see `state.py`) and drives it until it
completes, fails, or waits for the user; it returns the outcome for the runner's log line.
Every write carries the claim's `attempt`, so a loop whose lease was taken over is refused
(EventRejected) and the runner drops it. Cancellation arrives as `asyncio.CancelledError` from
the runner; the loop itself never catches it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from personas.models import Route
from runs.events import event_append
from runs.models import RunStatus
from runs.runner import costs
from runs.runner.context import RunContext, context_load, route_selected_data
from runs.runner.db import Db
from runs.runner.providers.base import Entry, ProviderError, TextDelta, ToolCall, TurnRequest
from runs.runner.retry import TurnCaller, TurnOutput
from runs.runner.state import CallState, Turn
from runs.runner.tools import ASK_USER, ToolFailed, ask_user_prompt, tool_run, tool_specs
from runs.runner.writer import EventWriter
from threads.models import Message, Thread
from threads.services import message_create

RELEASE = {"lease_owner": "", "lease_expires_at": None}
APPROVALS = {"approve", "yes"}
LOST_LEASES_LIMIT = 3


@dataclass
class Claim:
    run_id: str
    attempt: int
    status: str
    previous_owner: str  # non-empty: we took over an expired lease


class AgentLoop:
    def __init__(self, *, claim: Claim, db: Db, writer: EventWriter) -> None:
        self.claim = claim
        self.db = db
        self.writer = writer
        self.ctx: RunContext | None = None

    async def execute(self) -> str:
        """Run until an outcome: "completed", "failed", "waiting", "cancelled"."""
        self.ctx = await self.db.call(context_load, self.claim.run_id)
        if self.claim.status == RunStatus.CANCELLING:
            return await self.cancel("cancel_requested")
        outcome = await self._recover()
        if outcome is None and self.ctx.problem:
            outcome = await self.fail("internal.error", self.ctx.problem)
        if outcome is None and not self.ctx.log.route_id:
            await self._route_selected(self.ctx.routes[0])
        if outcome is not None:
            return outcome
        try:
            return await self._drive()
        except _Finished as finished:
            return finished.outcome

    async def _recover(self) -> str | None:
        """After a takeover (or a release mid-turn): mark the restart, or give up after 3 lost leases."""
        log = self.ctx.log
        if self.claim.previous_owner:
            if log.lost_leases + 1 >= LOST_LEASES_LIMIT:
                return await self.fail("worker.lost", f"the run lost its runner {LOST_LEASES_LIMIT} times")
            await self._append("run.restarted", {"attempt": self.claim.attempt, "reason": "lease_expired"})
            log.lost_leases += 1
        elif log.partial:
            await self._append("run.restarted", {"attempt": self.claim.attempt, "reason": "released"})
        log.partial = False
        return None

    async def _drive(self) -> str:
        log, persona = self.ctx.log, self.ctx.persona
        while True:
            if log.turns and (outcome := await self._settle_tools(log.turns[-1])):
                return outcome
            last = log.turns[-1] if log.turns else None
            if last is not None and last.is_final:
                return await self._complete()
            if len(log.turns) >= persona.max_iterations:
                return await self.fail("budget.exceeded", f"no final answer within {persona.max_iterations} turns")
            turn = await self._turn()
            if turn.ask is not None and turn.ask_input is None:
                return await self._wait({"kind": "question", "prompt": turn.ask})

    # --- one model turn -------------------------------------------------------------------------

    async def _turn(self) -> Turn:
        caller = TurnCaller(emit=self._emit_delta, on_retry=self._retry, on_route=self._route_selected)
        routes = self._routes_from_current()
        try:
            output = await caller.call(routes, self._request())
        except ProviderError as exc:
            await self.fail(exc.error_class, exc.message)
            raise _Finished("failed") from None
        return await self._commit_turn(output)

    def _request(self) -> TurnRequest:
        persona = self.ctx.persona
        return TurnRequest(system_prompt=persona.system_prompt, entries=self._entries(),
                           tools=tool_specs(persona.tools), max_output_tokens=persona.max_output_tokens,
                           temperature=persona.temperature)

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
        """Write the turn's tool calls, then `llm.turn.completed` (the commit point) with its cost."""
        turn = Turn(text=output.text, ask=output.ask)
        for call in output.calls:
            call.id = call.id or f"call_{len(self.ctx.log.turns)}_{len(turn.calls)}"
            turn.calls.append(CallState(call))
            self.writer.append(self.claim.run_id, self.claim.attempt, "tool.call",
                               {"tool_call_id": call.id, "tool_name": call.name, "arguments": call.arguments})
        usage, cost = output.usage, costs.turn_cost(output.usage, output.route)
        await self._append("llm.turn.completed", {"usage": usage.as_dict(), "cost_usd": costs.cost_number(cost)},
                           fields={"total_input_tokens": F("total_input_tokens") + usage.input_tokens,
                                   "total_output_tokens": F("total_output_tokens") + usage.output_tokens,
                                   "total_cached_input_tokens": F("total_cached_input_tokens")
                                   + usage.cached_input_tokens,
                                   "total_cost_usd": F("total_cost_usd") + cost})
        log = self.ctx.log
        log.turns.append(turn)
        for name in ("input_tokens", "output_tokens", "cached_input_tokens"):
            setattr(log.usage, name, getattr(log.usage, name) + getattr(usage, name))
        log.cost += Decimal(repr(costs.cost_number(cost)))
        return turn

    # --- tools ----------------------------------------------------------------------------------

    async def _settle_tools(self, turn: Turn) -> str | None:
        """Give every tool call of the last turn an outcome; "waiting" when one needs the user."""
        for state in turn.calls:
            if state.outcome is None and (outcome := await self._settle(state)):
                return outcome
        return None

    async def _settle(self, state: CallState) -> str | None:
        call, persona = state.call, self.ctx.persona
        if call.name not in persona.tools:
            return await self._deny(state, f"tool {call.name!r} is not allowed for this persona")
        if state.input is not None:
            return await self._answered(state)
        if call.name == ASK_USER:
            return await self._wait({"kind": "question", "prompt": ask_user_prompt(call.arguments),
                                     **_call_fields(call)})
        if call.name in persona.confirm_tools:
            return await self._wait({"kind": "tool_confirmation", "prompt": _confirm_prompt(call),
                                     **_call_fields(call)})
        return await self._execute(state)

    async def _answered(self, state: CallState) -> str | None:
        if state.call.name == ASK_USER:
            return await self._record(state, {"result": state.input})
        if state.input.strip().lower() in APPROVALS:
            return await self._execute(state)
        return await self._deny(state, "the user did not approve this tool call")

    async def _execute(self, state: CallState) -> None:
        try:
            outcome: dict[str, Any] = {"result": tool_run(state.call.name, state.call.arguments)}
        except ToolFailed as exc:
            outcome = {"error": {"error_class": exc.error_class, "message": exc.message}}
        return await self._record(state, outcome)

    async def _record(self, state: CallState, outcome: dict[str, Any]) -> None:
        data = {"tool_call_id": state.call.id, "tool_name": state.call.name, **outcome}
        await self.writer.write(self.claim.run_id, self.claim.attempt, "tool.result", data)
        state.outcome = outcome

    async def _deny(self, state: CallState, reason: str) -> None:
        data = {"tool_call_id": state.call.id, "tool_name": state.call.name, "reason": reason}
        await self.writer.write(self.claim.run_id, self.claim.attempt, "tool.denied", data)
        state.outcome = {"denied": reason}

    # --- outcomes ---------------------------------------------------------------------------------

    async def _wait(self, data: dict[str, Any]) -> str:
        """Hand the run to the user: status waiting_for_input, lease released, nothing held."""
        await self._append("run.waiting_for_input", data, status=RunStatus.WAITING_FOR_INPUT,
                           fields={**RELEASE, "waiting_since": timezone.now()})
        return "waiting"

    async def _complete(self) -> str:
        await self.writer.flush(self.claim.run_id)
        log = self.ctx.log
        await self.db.call(run_complete, run_id=self.claim.run_id, attempt=self.claim.attempt,
                           thread_id=self.ctx.run.thread_id, reply=log.reply, usage=log.usage.as_dict(), cost=log.cost)
        return "completed"

    async def fail(self, error_class: str, message: str) -> str:
        await self._append("run.failed", {"error_class": error_class, "message": message},
                           fields={**RELEASE, "error_class": error_class})
        return "failed"

    async def cancel(self, reason: str) -> str:
        await self._append("run.cancelled", {"reason": reason}, fields=dict(RELEASE))
        return "cancelled"

    async def _append(self, type: str, data: dict[str, Any], **kwargs: Any) -> None:
        """Write one event after the run's queued ones (keeps the order), fenced by our attempt."""
        await self.writer.flush(self.claim.run_id)
        await self.db.call(event_append, run_id=self.claim.run_id, type=type, data=data,
                           attempt=self.claim.attempt, **kwargs)


class _Finished(Exception):
    """The loop ended early with an outcome already written."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome


def run_complete(*, run_id: str, attempt: int, thread_id: Any, reply: str, usage: dict[str, int],
                 cost: Decimal) -> Message:
    """The assistant message, the run's totals and `run.completed` — one transaction, fenced."""
    with transaction.atomic():
        message = message_create(thread=Thread.objects.get(pk=thread_id), content=reply,
                                 role=Message.Role.ASSISTANT, run_id=run_id)
        credits = costs.credits_for(cost)
        event_append(run_id=run_id, type="run.completed", attempt=attempt,
                     data={"usage": usage, "total_cost_usd": costs.cost_number(cost), "credits_used": credits,
                           "message_id": str(message.pk)},
                     fields={**RELEASE, "total_input_tokens": usage["input_tokens"],
                             "total_output_tokens": usage["output_tokens"],
                             "total_cached_input_tokens": usage["cached_input_tokens"],
                             "total_cost_usd": cost, "credits_used": credits})
    return message


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
