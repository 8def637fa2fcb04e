"""A run's limits: what they are, where they come from, how they combine (the runner enforces them).

Five limits. Each run gets its *effective* limits when it is created: for each one, the smallest
of the platform's (environment), the persona's (`limits` in its YAML or admin page) and the run's
own (`limits` in the create body). The run's own may only lower the others; a higher value, a
negative one, a wrong type or an unknown name is refused, naming it. `None` means "no limit".

| name                | platform default (env)              | counts                                     |
|---------------------|-------------------------------------|--------------------------------------------|
| `max_turns`         | 32 (`ARKLOOP_MAX_TURNS`)            | provider calls (a turn, with its retries)  |
| `max_tool_calls`    | 128 (`ARKLOOP_MAX_TOOL_CALLS`)      | tools executed                             |
| `max_output_tokens` | none                                | output tokens over the whole run           |
| `max_cost_usd`      | none                                | the run's total cost                       |
| `timeout_seconds`   | 900 (`ARKLOOP_RUN_TIMEOUT_SECONDS`) | seconds running, not waiting for input     |
"""
from __future__ import annotations

import math
from typing import Any

from django.conf import settings

INTEGER_LIMITS = ("max_turns", "max_tool_calls", "max_output_tokens")
NUMBER_LIMITS = ("max_cost_usd", "timeout_seconds")
LIMIT_NAMES = ("max_turns", "max_tool_calls", "max_output_tokens", "max_cost_usd", "timeout_seconds")
ALIASES = {"max_iterations": "max_turns"}  # the persona field that came before `limits`
MAX_VALUE = 10**9  # far past any sensible limit, and within every column and JSON number

Limits = dict[str, int | float | None]


class LimitsInvalid(ValueError):
    """Limits that cannot be accepted: `errors` maps each offending name to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items()))


def platform_limits() -> Limits:
    """The platform's limits, from the environment (defaults in arkloop.settings)."""
    return {"max_turns": settings.ARKLOOP_MAX_TURNS, "max_tool_calls": settings.ARKLOOP_MAX_TOOL_CALLS,
            "max_output_tokens": None, "max_cost_usd": None,
            "timeout_seconds": settings.ARKLOOP_RUN_TIMEOUT_SECONDS}


def _value_error(name: str, value: Any) -> str | None:
    integer = name in INTEGER_LIMITS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        return "must be an integer" if integer else "must be a number"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if value < 0:
        return "must not be negative"
    if value > MAX_VALUE:
        return f"must be at most {MAX_VALUE}"
    return None


def limits_parse(raw: Any) -> Limits:
    """Check limits given as a JSON object (a create body, a persona's YAML or admin form).

    Returns `{name: value}` for the limits given (aliases renamed, nulls left out). Raises
    LimitsInvalid naming each unknown name and each value that is not a non-negative number
    (an integer for the counts) of at most MAX_VALUE.
    """
    if not isinstance(raw, dict):
        raise LimitsInvalid({"": ["must be an object of limits"]})
    parsed: Limits = {}
    errors: dict[str, list[str]] = {}
    for given, value in raw.items():
        name = ALIASES.get(given, given)
        if name not in LIMIT_NAMES:
            errors[str(given)] = [f"unknown limit; known: {', '.join(LIMIT_NAMES)}"]
        elif value is not None and (message := _value_error(name, value)):
            errors[str(given)] = [message]
        elif name in parsed and value is not None and parsed[name] != value:
            errors[str(given)] = [f"contradicts {name}"]
        elif value is not None:
            parsed[name] = value
    if errors:
        raise LimitsInvalid(errors)
    return parsed


def limits_effective(*layers: Limits) -> Limits:
    """Every limit, the smallest any layer sets (None where none does)."""
    effective: Limits = {}
    for name in LIMIT_NAMES:
        values = [layer[name] for layer in layers if layer.get(name) is not None]
        effective[name] = min(values) if values else None
    return effective


def limits_check_lower(requested: Limits, ceiling: Limits) -> None:
    """Raise LimitsInvalid for each requested limit above `ceiling` (the platform's and persona's)."""
    errors = {name: [f"may only lower the limit: at most {ceiling[name]}"]
              for name, value in requested.items()
              if ceiling.get(name) is not None and value > ceiling[name]}
    if errors:
        raise LimitsInvalid(errors)
