"""Run limits (max_turns, max_tool_calls, max_output_tokens, max_cost_usd, timeout_seconds) end runs
`run.failed budget.exceeded` with the limit's name, within one turn of the budget."""
from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from decimal import Decimal

import pytest

from runs.models import Run, RunEvent
from runs.runner import tools
from runs.runner.providers.base import ToolSpec
from tests.runner.helpers import answer, assert_gapless, deltas, of_type, provide_input, run, run_once, start, stub
from threads.models import Message

pytestmark = pytest.mark.django_db(transaction=True)
ECHO = {"name": "echo", "arguments": {"text": "again"}}


def failed_on(run_id: str) -> str:
    failed = of_type(run_id, "run.failed")
    assert len(failed) == 1 and failed[0]["error_class"] == "budget.exceeded", failed
    assert run(run_id).status == "failed" and run(run_id).error_class == "budget.exceeded"
    assert_gapless(run_id)
    return failed[0]["limit"]


def turns(run_id: str) -> int:
    return len(of_type(run_id, "llm.turn.completed"))


def test_max_turns_from_the_create_body_stops_a_multi_turn_run(alice):
    _, run_id = start(alice, stub(tools=[ECHO], repeat=10, reply="never"), limits={"max_turns": 3})
    run_once()
    assert failed_on(run_id) == "max_turns" and turns(run_id) == 3


def test_max_turns_from_the_environment_and_from_the_persona(alice, persona, settings):
    settings.ARKLOOP_MAX_TURNS = 2
    _, from_env = start(alice, stub(tools=[ECHO], repeat=10))
    one_turn = persona("one-turn", limits={"max_turns": 1})
    _, from_persona = start(alice, stub(tools=[ECHO], repeat=10), persona_id=one_turn)
    run_once()
    assert failed_on(from_env) == "max_turns" and turns(from_env) == 2
    assert failed_on(from_persona) == "max_turns" and turns(from_persona) == 1


def test_the_tool_call_past_max_tool_calls_is_not_executed(alice):
    _, run_id = start(alice, stub(tools=[ECHO, ECHO], repeat=5, reply="never"), limits={"max_tool_calls": 3})
    run_once()
    assert failed_on(run_id) == "max_tool_calls"
    assert len(of_type(run_id, "tool.result")) == 3 and len(of_type(run_id, "tool.call")) == 4


def test_max_output_tokens_ends_the_run_at_most_one_turn_past_it(alice):
    usage = {"input_tokens": 10, "output_tokens": 100}
    _, run_id = start(alice, stub(tools=[ECHO], repeat=10, usage=usage), limits={"max_output_tokens": 250})
    run_once()
    assert failed_on(run_id) == "max_output_tokens"
    assert turns(run_id) == 3 and run(run_id).total_output_tokens == 300  # < 250 + one turn


def test_max_cost_usd_ends_the_run_at_most_one_turn_past_it(alice, priced_stub):
    usage = {"input_tokens": 0, "output_tokens": 100_000}  # $0.80 a turn at $8 per million output tokens
    _, run_id = start(alice, stub(tools=[ECHO], repeat=10, usage=usage), route_id=priced_stub.pk,
                      limits={"max_cost_usd": 2})
    run_once()
    assert failed_on(run_id) == "max_cost_usd"
    assert turns(run_id) == 3 and run(run_id).total_cost_usd == Decimal("2.4")


def test_a_final_answer_within_the_limits_completes(alice):
    _, run_id = start(alice, stub(tools=[ECHO], repeat=2, reply="done"),
                      limits={"max_turns": 3, "max_tool_calls": 2, "timeout_seconds": 60})
    run_once()
    assert run(run_id).status == "completed" and answer(run_id).content == "done"


def test_the_timeout_interrupts_a_streaming_reply(alice):
    _, run_id = start(alice, stub(reply="slow " * 50, chunks=50, delay_ms=100), limits={"timeout_seconds": 1})
    run_once()
    assert failed_on(run_id) == "timeout_seconds"
    assert 0 < len(deltas(run_id)) < 50  # what it streamed stays in its log


def test_the_timeout_interrupts_a_tool(alice, persona, monkeypatch):
    def stuck(arguments: dict) -> str:
        time.sleep(3)  # a plain function: abandoned on its thread, its result never recorded
        return "too late"

    monkeypatch.setitem(tools.REGISTRY, "stuck", tools.Tool(ToolSpec("stuck", "never returns in time", {}), stuck))
    slow = persona("slow-tools", tools=["stuck"])
    _, run_id = start(alice, stub(tools=[{"name": "stuck", "arguments": {}}], reply="never"), persona_id=slow,
                      limits={"timeout_seconds": 1})
    run_once()
    assert failed_on(run_id) == "timeout_seconds"
    assert of_type(run_id, "tool.call") and not of_type(run_id, "tool.result")


def test_an_async_tool_is_cancelled_by_the_timeout(alice, persona, monkeypatch):
    async def stuck(arguments: dict) -> str:
        await asyncio.sleep(3600)
        return "never"

    monkeypatch.setitem(tools.REGISTRY, "stuck", tools.Tool(ToolSpec("stuck", "awaits forever", {}), stuck))
    slow = persona("slow-async-tools", tools=["stuck"])
    _, run_id = start(alice, stub(tools=[{"name": "stuck", "arguments": {}}]), persona_id=slow,
                      limits={"timeout_seconds": 1})
    run_once()
    assert failed_on(run_id) == "timeout_seconds"


def test_time_waiting_for_input_does_not_count_against_the_timeout(alice):
    _, run_id = start(alice, stub(ask="Which city?", reply="Paris it is"), limits={"timeout_seconds": 5})
    run_once()
    # As if the run had been created 10 minutes ago and waited 9 minutes 59.5 s of them.
    long_ago = run(run_id).created_at - timedelta(minutes=10)
    Run.objects.filter(pk=run_id).update(created_at=long_ago)
    Message.objects.filter(thread_id=run(run_id).thread_id).update(created_at=long_ago)
    RunEvent.objects.filter(run_id=run_id, type="run.waiting_for_input").update(
        created_at=long_ago + timedelta(seconds=0.5))
    provide_input(alice, run_id, "Paris")
    run_once()
    assert run(run_id).status == "completed" and answer(run_id).content == "Paris it is"


def test_a_run_queued_past_its_timeout_fails_before_calling_the_model(alice):
    _, run_id = start(alice, "hello", limits={"timeout_seconds": 5})
    Run.objects.filter(pk=run_id).update(created_at=run(run_id).created_at - timedelta(seconds=6))
    Message.objects.filter(thread_id=run(run_id).thread_id).update(created_at=run(run_id).created_at)
    run_once()
    assert failed_on(run_id) == "timeout_seconds" and turns(run_id) == 0
