"""What a run has done so far, rebuilt from its event log — the runner keeps no other memory.

Any runner can resume any run from here: after input, after a release at shutdown, after a
takeover of a dead runner's lease. A turn is *committed* by its `llm.turn.completed`; output
written after the last committed turn (deltas, tool calls) is *partial* and is dropped on
resume, which clients learn from `run.restarted`. Tool outcomes (`tool.result`, `tool.denied`)
are recorded after their turn and are never lost, so a recorded tool never runs twice.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from runs.runner.providers.base import ToolCall, Usage
from runs.runner.tools import ASK_USER


class RestartReason(StrEnum):
    """Why a run was restarted (`run.restarted.reason`)."""

    LEASE_EXPIRED = "lease_expired"    # its runner died or froze: an interruption
    DATABASE_ERROR = "database_error"  # its writes may be lost (the database broke): an interruption
    RELEASED = "released"              # given back at shutdown mid-turn: not an interruption


@dataclass
class CallState:
    call: ToolCall
    outcome: dict[str, Any] | None = None  # {"result": …} | {"error": {…}} | {"denied": reason}
    waiting: dict[str, Any] | None = None  # the run.waiting_for_input data for this call
    input: str | None = None               # the answer to that wait


@dataclass
class Turn:
    text: str = ""
    calls: list[CallState] = field(default_factory=list)
    ask: str | None = None
    ask_input: str | None = None

    @property
    def is_final(self) -> bool:
        return not self.calls and self.ask is None


@dataclass
class RunLog:
    turns: list[Turn] = field(default_factory=list)
    partial: bool = False         # output after the last committed turn
    route_id: str = ""            # the last run.route.selected
    restarts: int = 0             # run.restarted after an interruption (not a release at shutdown)
    tools_executed: int = 0       # tool.result of a tool that ran (not an answer to ask_user)
    dropped_messages: int = 0     # the last run.context.truncated
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)
    last_type: str = ""

    @property
    def reply(self) -> str:
        """The visible text of the committed turns: what the deltas concatenate to."""
        return "".join(turn.text for turn in self.turns)

    def call(self, tool_call_id: str) -> CallState | None:
        for turn in reversed(self.turns):
            for state in turn.calls:
                if state.call.id == tool_call_id:
                    return state
        return None


def log_replay(events: list[tuple[str, dict[str, Any]]]) -> RunLog:
    """Fold `(type, data)` events, oldest first, into a RunLog."""
    log, current = RunLog(), Turn()
    for type, data in events:
        log.last_type = type
        current = _apply(log, current, type, data)
    return log


def _apply(log: RunLog, current: Turn, type: str, data: dict[str, Any]) -> Turn:
    if type == "message.delta":
        if data.get("channel") is None:
            current.text += data.get("content", "")
        log.partial = True
    elif type == "tool.call":
        current.calls.append(CallState(ToolCall(data["tool_call_id"], data["tool_name"], data.get("arguments") or {})))
        log.partial = True
    elif type == "llm.turn.completed":
        _add_usage(log, data)
        log.turns.append(current)
        log.partial = False
        return Turn()
    elif type == "run.restarted":
        log.partial = False
        log.restarts += data.get("reason") != RestartReason.RELEASED
        return Turn()
    elif type == "run.route.selected":
        log.route_id = data.get("route_id", "")
    elif type == "run.context.truncated":
        log.dropped_messages = data.get("dropped_messages", 0)
    else:
        _apply_outcome(log, type, data)
    return current


def _apply_outcome(log: RunLog, type: str, data: dict[str, Any]) -> None:
    """Tool outcomes, waits and inputs: they refer to the last committed turn."""
    state = log.call(data.get("tool_call_id", "")) if data.get("tool_call_id") else None
    if type == "tool.result" and state:
        state.outcome = {k: data[k] for k in ("result", "error") if k in data}
        log.tools_executed += state.call.name != ASK_USER
    elif type == "tool.denied" and state:
        state.outcome = {"denied": data.get("reason", "")}
    elif type == "run.waiting_for_input":
        if state:
            state.waiting = data
        elif log.turns:
            log.turns[-1].ask = data.get("prompt", "")
    elif type == "run.input_provided":
        _attach_input(log, data.get("content", ""))


def _attach_input(log: RunLog, content: str) -> None:
    """An input answers the one open wait: a tool call's, or the last turn's question."""
    for turn in reversed(log.turns):
        for state in turn.calls:
            if state.waiting is not None and state.input is None and state.outcome is None:
                state.input = content
                return
        if turn.ask is not None and turn.ask_input is None:
            turn.ask_input = content
            return


def _add_usage(log: RunLog, data: dict[str, Any]) -> None:
    usage = data.get("usage") or {}
    log.usage.input_tokens += usage.get("input_tokens", 0)
    log.usage.output_tokens += usage.get("output_tokens", 0)
    log.usage.cached_input_tokens += usage.get("cached_input_tokens", 0)
    # The event holds a float; its repr is the short decimal it came from.
    log.cost += Decimal(repr(data.get("cost_usd", 0)))
