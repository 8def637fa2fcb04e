"""Enforcing a run's limits (runs.limits) in the agent loop: before each provider call and each tool.

The call that would go past a limit is not made: `before_turn` / `before_tool` name the limit
reached, and the loop ends the run `run.failed budget.exceeded` with that `limit`. A turn's
output cannot be known in advance, so `max_tokens` of the provider call is capped at what the
output-token and cost budgets still allow (cost at the route's output price): a run ends at most
one turn past its budget. The timeout is a deadline on the event loop's clock, set when the run
is loaded from the seconds it has already spent running (time waiting for input not counted);
the loop holds it with `asyncio.timeout_at`, which interrupts a streaming call or a tool at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from personas.models import Route
from runs.limits import Limits
from runs.runner.state import RunLog

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Exceeded:
    """A limit the run reached: `limit` is its name (the `limit` of run.failed)."""

    limit: str
    message: str


@dataclass
class Budget:
    limits: Limits
    spent_seconds: float = 0.0  # running time before this claim (from the run's log)

    def deadline(self, now: float) -> float | None:
        """The event-loop time at which the run's time is up (None: no timeout)."""
        timeout = self.limits.get("timeout_seconds")
        return None if timeout is None else now + max(0.0, timeout - self.spent_seconds)

    def timed_out(self) -> Exceeded:
        return Exceeded("timeout_seconds", f"the run ran longer than its limit of {self.limits['timeout_seconds']} s")

    def before_turn(self, log: RunLog, route: Route) -> Exceeded | None:
        """The limit a further provider call would go past, if any."""
        turns, cap = len(log.turns), self.limits.get("max_turns")
        if cap is not None and turns >= cap:
            return Exceeded("max_turns", f"no final answer within the limit of {cap} turns")
        tokens_left = self._tokens_left(log)
        if tokens_left is not None and tokens_left <= 0:
            return Exceeded("max_output_tokens", f"the run used its limit of {self.limits['max_output_tokens']} "
                                                 "output tokens")
        affordable = self._affordable_tokens(log, route)
        if affordable is not None and affordable <= 0:
            return Exceeded("max_cost_usd", f"the run reached its cost limit of ${self.limits['max_cost_usd']}")
        return None

    def before_tool(self, log: RunLog) -> Exceeded | None:
        cap = self.limits.get("max_tool_calls")
        if cap is not None and log.tools_executed >= cap:
            return Exceeded("max_tool_calls", f"the run reached its limit of {cap} tool calls")
        return None

    def max_tokens(self, log: RunLog, route: Route, per_call: int | None) -> int | None:
        """The provider's `max_tokens` for the next call: the persona's per-call value, capped by what
        the output-token and cost limits leave."""
        caps = [cap for cap in (per_call, self._tokens_left(log), self._affordable_tokens(log, route))
                if cap is not None]
        return max(1, min(caps)) if caps else None

    def _tokens_left(self, log: RunLog) -> int | None:
        cap = self.limits.get("max_output_tokens")
        return None if cap is None else cap - log.usage.output_tokens

    def _affordable_tokens(self, log: RunLog, route: Route) -> int | None:
        """Output tokens the remaining cost budget pays for at the route's output price."""
        cap = self.limits.get("max_cost_usd")
        if cap is None:
            return None
        left = Decimal(repr(cap)) - log.cost
        if left <= 0:
            return 0
        price = Decimal(route.price_output)
        return None if price <= 0 else min(math.floor(left * MILLION / price), 10**12)
