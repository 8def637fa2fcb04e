"""The tool registry: what a model may call, with JSON schemas for the providers.

A built-in tool runs with `await tool_call(name, arguments)`, the one way in (the agent loop
reaches it, and the MCP tools, through `toolbox.Toolbox`, which also applies the persona's `tools`
and `confirm_tools`). A tool's function is a plain function of its arguments or a coroutine
function; a plain one runs on a small thread pool of its own, so the awaiting run can be cancelled
or time out at once whatever the tool does (an abandoned call finishes on its thread, its result
unused), and a slow tool never blocks the event loop the other runs share. `ask_user` is special:
it has no function, the loop turns it into `run.waiting_for_input` (kind `question`) and the
user's answer becomes its result.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from personas.tool_patterns import tool_allowed
from runs.runner.calculator import CalculatorError, calculate
from runs.runner.providers.base import ToolSpec

ASK_USER = "ask_user"
# Threads for plain-function tools; an abandoned call holds one until its function returns.
_THREADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="arkloop-tool")


class ToolFailed(Exception):
    def __init__(self, error_class: str, message: str) -> None:
        self.error_class = error_class
        self.message = message
        super().__init__(message)


@dataclass
class ToolPlan:
    """What to do with an allowed call before running it."""

    confirm: bool = False               # wait for the user's approval (run.waiting_for_input tool_confirmation)
    failure: ToolFailed | None = None   # known to fail without running: recorded as the call's error


@dataclass
class Tool:
    spec: ToolSpec
    function: Callable[[dict[str, Any]], Any] | None  # plain or async; None: handled by the loop (ask_user)


def _echo(arguments: dict[str, Any]) -> Any:
    return arguments["text"] if "text" in arguments else arguments


def _calculator(arguments: dict[str, Any]) -> Any:
    try:
        return calculate(arguments.get("expression"))
    except CalculatorError as exc:
        raise ToolFailed("tool.invalid_arguments", str(exc)) from None


def _current_time(arguments: dict[str, Any]) -> Any:
    return timezone.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


REGISTRY: dict[str, Tool] = {
    "echo": Tool(ToolSpec("echo", "Repeat the given text exactly.",
                          _object({"text": {"type": "string"}}, ["text"])), _echo),
    "calculator": Tool(ToolSpec("calculator", "Evaluate an arithmetic expression: numbers, + - * / // % ** and "
                                "parentheses.", _object({"expression": {"type": "string"}}, ["expression"])),
                       _calculator),
    "current_time": Tool(ToolSpec("current_time", "The current date and time (UTC, RFC 3339).", _object({}, [])),
                         _current_time),
    ASK_USER: Tool(ToolSpec(ASK_USER, "Ask the user a question and wait for the answer.",
                            _object({"question": {"type": "string"}}, ["question"])), None),
}


def tool_specs(patterns: list[str]) -> list[ToolSpec]:
    """The specs of the registered tools that `patterns` (a persona's `tools`) allow, in their order."""
    names = dict.fromkeys(name for pattern in patterns for name in REGISTRY if tool_allowed([pattern], name))
    return [REGISTRY[name].spec for name in names]


async def tool_call(name: str, arguments: dict[str, Any]) -> Any:
    """Run a registered tool and return its result; raises ToolFailed with an error class for any
    failure. Cancelling the caller abandons the call at once (see the module docstring)."""
    tool = REGISTRY.get(name)
    if tool is None or tool.function is None:
        raise ToolFailed("tool.not_found", f"no tool named {name[:100]!r}")
    try:
        if inspect.iscoroutinefunction(tool.function):
            return await tool.function(arguments)
        return await asyncio.get_running_loop().run_in_executor(_THREADS, functools.partial(tool.function, arguments))
    except ToolFailed:
        raise
    except Exception as exc:  # a tool's bug must not kill the run: the model gets the error
        raise ToolFailed("tool.error", f"{type(exc).__name__}") from None


def ask_user_prompt(arguments: dict[str, Any]) -> str:
    return str(arguments.get("question") or arguments.get("prompt") or "The assistant has a question.")
