"""The stub provider's script keys (SPEC §5), end to end through the API and an in-process runner."""
from __future__ import annotations

from decimal import Decimal

import pytest

from personas.models import Route
from tests.runner.helpers import (
    answer,
    assert_gapless,
    deltas,
    events,
    of_type,
    provide_input,
    run,
    run_once,
    start,
    stub,
    types,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_plain_message_is_echoed_one_delta_per_word(alice):
    thread_id, run_id = start(alice, "hello  big\nworld")
    run_once()
    assert deltas(run_id) == ["You ", "said: ", "hello  ", "big\n", "world"]
    assert types(run_id)[:3] == ["run.started", "run.route.selected", "message.delta"]
    assert of_type(run_id, "run.route.selected") == [
        {"route_id": "stub", "provider": "stub", "model": run(run_id).model, "trace_id": run(run_id).trace_id}]
    message = answer(run_id)
    assert message.content == "You said: hello  big\nworld" and str(message.thread_id) == thread_id
    completed = of_type(run_id, "run.completed")[0]
    assert completed["message_id"] == str(message.pk)
    assert run(run_id).status == "completed" and run(run_id).completed_at is not None
    assert run(run_id).lease_owner == ""
    assert_gapless(run_id)


def test_every_event_carries_the_runs_trace_id(alice):
    _, run_id = start(alice, "hi")
    run_once()
    trace_id = run(run_id).trace_id
    assert {data["trace_id"] for _, data in events(run_id)} == {trace_id}


def test_scripted_reply_is_split_into_chunks(alice):
    _, run_id = start(alice, stub(reply="The quick brown fox", chunks=3, delay_ms=5))
    run_once()
    assert len(deltas(run_id)) == 3
    assert "".join(deltas(run_id)) == answer(run_id).content == "The quick brown fox"


def test_scripted_reply_without_chunks_streams_word_by_word(alice):
    _, run_id = start(alice, stub(reply="one two three"))
    run_once()
    assert deltas(run_id) == ["one ", "two ", "three"]


def test_tool_calls_come_first_and_the_reply_in_the_next_turn(alice):
    _, run_id = start(alice, stub(tools=[{"name": "echo", "arguments": {"text": "ping"}},
                                         {"name": "calculator", "arguments": {"expression": "6*7"}}], reply="done"))
    run_once()
    calls, results = of_type(run_id, "tool.call"), of_type(run_id, "tool.result")
    assert [(c["tool_name"], c["arguments"]) for c in calls] == [("echo", {"text": "ping"}),
                                                                  ("calculator", {"expression": "6*7"})]
    assert [r["result"] for r in results] == ["ping", 42]
    assert [r["tool_call_id"] for r in results] == [c["tool_call_id"] for c in calls]
    assert len(of_type(run_id, "llm.turn.completed")) == 2
    assert types(run_id).index("tool.result") < types(run_id).index("message.delta")
    assert answer(run_id).content == "done"


def test_a_tool_outside_the_persona_is_denied_and_the_model_continues(alice, persona):
    limited = persona("limited", tools=["echo"])
    _, run_id = start(alice, stub(tools=[{"name": "calculator", "arguments": {"expression": "1+1"}},
                                         {"name": "rm_rf", "arguments": {}}], reply="ok"), persona_id=limited)
    run_once()
    denied = of_type(run_id, "tool.denied")
    assert [d["tool_name"] for d in denied] == ["calculator", "rm_rf"] and all(d["reason"] for d in denied)
    assert of_type(run_id, "tool.result") == []
    assert run(run_id).status == "completed" and answer(run_id).content == "ok"


@pytest.mark.parametrize("expression", ["2**10000000", "9" * 400 + "**9", "10**100*10**100", "x + 1",
                                        "().__class__", "__import__('os').system('true')", "open('/etc/passwd')",
                                        "[1, 2]", "1/0", "'a' * 10"])
def test_calculator_rejects_what_is_not_small_arithmetic(alice, expression):
    _, run_id = start(alice, stub(tools=[{"name": "calculator", "arguments": {"expression": expression}}],
                                  reply="checked"))
    run_once()
    result = of_type(run_id, "tool.result")[0]
    assert "result" not in result and result["error"]["error_class"].startswith("tool.")
    assert run(run_id).status == "completed"


def test_calculator_does_arithmetic(alice):
    _, run_id = start(alice, stub(tools=[{"name": "calculator", "arguments": {"expression": "(2 + 3) * 4 ** 2 - 1/4"}}],
                                  reply="ok"))
    run_once()
    assert of_type(run_id, "tool.result")[0]["result"] == 79.75


def test_current_time_is_an_rfc3339_utc_timestamp(alice):
    _, run_id = start(alice, stub(tools=[{"name": "current_time", "arguments": {}}], reply="ok"))
    run_once()
    assert of_type(run_id, "tool.result")[0]["result"].endswith("Z")


def test_ask_waits_for_input_holding_nothing_then_answers_it(alice):
    _, run_id = start(alice, stub(ask="What is your name?"))
    run_once()
    waiting = run(run_id)
    assert waiting.status == "waiting_for_input" and waiting.lease_owner == ""
    assert waiting.waiting_since is not None and waiting.lease_expires_at <= waiting.waiting_since
    [question] = of_type(run_id, "run.waiting_for_input")
    assert question["kind"] == "question" and question["prompt"] == "What is your name?"
    provide_input(alice, run_id, "Ada")
    run_once()
    assert answer(run_id).content == "You said: Ada" and "".join(deltas(run_id)) == "You said: Ada"
    assert "run.restarted" not in types(run_id)
    assert_gapless(run_id)


def test_ask_with_a_scripted_reply(alice):
    _, run_id = start(alice, stub(ask="Sure?", reply="Fine then."))
    run_once()
    provide_input(alice, run_id, "yes")
    run_once()
    assert answer(run_id).content == "Fine then."


def test_ask_user_tool_turns_the_input_into_its_result(alice):
    _, run_id = start(alice, stub(tools=[{"name": "ask_user", "arguments": {"question": "Which city?"}}], reply="ok"))
    run_once()
    [wait] = of_type(run_id, "run.waiting_for_input")
    call = of_type(run_id, "tool.call")[0]
    assert wait["kind"] == "question" and wait["prompt"] == "Which city?"
    assert wait["tool_call_id"] == call["tool_call_id"] and wait["tool_name"] == "ask_user"
    provide_input(alice, run_id, "Lisbon")
    run_once()
    assert of_type(run_id, "tool.result")[0]["result"] == "Lisbon"
    assert run(run_id).status == "completed"


@pytest.mark.parametrize("reply", ["approve", "Yes"])
def test_confirmed_tool_runs_after_approval(alice, reply):
    _, run_id = start(alice, stub(tools=[{"name": "calculator", "arguments": {"expression": "2+2"}}], reply="4"),
                      persona_id="careful")
    run_once()
    [wait] = of_type(run_id, "run.waiting_for_input")
    assert wait["kind"] == "tool_confirmation" and wait["tool_name"] == "calculator"
    assert wait["arguments"] == {"expression": "2+2"} and wait["prompt"]
    assert of_type(run_id, "tool.result") == []
    provide_input(alice, run_id, reply)
    run_once()
    assert of_type(run_id, "tool.result")[0]["result"] == 4 and run(run_id).status == "completed"


def test_confirmed_tool_is_denied_by_any_other_answer(alice):
    _, run_id = start(alice, stub(tools=[{"name": "calculator", "arguments": {"expression": "2+2"}}], reply="ok"),
                      persona_id="careful")
    run_once()
    provide_input(alice, run_id, "no way")
    run_once()
    assert of_type(run_id, "tool.result") == [] and of_type(run_id, "tool.denied")[0]["tool_name"] == "calculator"
    assert run(run_id).status == "completed"


def test_non_retryable_failure_fails_the_run_at_once(alice):
    _, run_id = start(alice, stub(fail="provider.bad_request"))
    run_once()
    assert of_type(run_id, "run.llm.retry") == []
    failed = of_type(run_id, "run.failed")[0]
    assert failed["error_class"] == "provider.bad_request" and failed["message"]
    assert run(run_id).status == "failed" and run(run_id).error_class == "provider.bad_request"
    assert_gapless(run_id)


def test_retryable_failure_is_retried_with_backoff_until_it_succeeds(alice):
    _, run_id = start(alice, stub(fail="provider.rate_limited", fail_times=2, reply="finally"))
    run_once()
    retries = of_type(run_id, "run.llm.retry")
    assert [(r["attempt"], r["max_attempts"], r["error_class"]) for r in retries] == [
        (1, 3, "provider.rate_limited"), (2, 3, "provider.rate_limited")]
    assert retries[1]["delay_ms"] == 2 * retries[0]["delay_ms"]
    assert answer(run_id).content == "finally"


def test_retryable_failure_that_persists_fails_the_run(alice):
    _, run_id = start(alice, stub(fail="provider.unavailable"))
    run_once()
    assert len(of_type(run_id, "run.llm.retry")) == 2
    assert run(run_id).status == "failed" and run(run_id).error_class == "provider.unavailable"


def test_fallback_route_answers_when_the_primary_gives_up(alice):
    Route.objects.create(id="backup", provider="stub", model="stub-backup")
    Route.objects.create(id="flaky", provider="stub", model="stub-flaky", fallback_id="backup")
    _, run_id = start(alice, stub(fail="provider.unavailable", fail_times=4, reply="from backup"), route_id="flaky")
    run_once()
    selected = of_type(run_id, "run.route.selected")
    assert [s["route_id"] for s in selected] == ["flaky", "backup"]
    assert len(of_type(run_id, "run.llm.retry")) == 3  # 2 on flaky, 1 on backup
    assert answer(run_id).content == "from backup" and run(run_id).route_id == "backup"


def test_usage_cost_and_credits_are_exact(alice, priced_stub, settings):
    settings.ARKLOOP_CREDITS_PER_USD = 1000
    usage = {"input_tokens": 1000, "output_tokens": 250, "cached_input_tokens": 400}
    _, run_id = start(alice, stub(tools=[{"name": "echo", "arguments": {"text": "x"}}], reply="ok", usage=usage),
                      route_id="priced-stub")
    run_once()
    # per turn: (600·2 + 400·0.5 + 250·8) / 1e6 = 0.0034
    turns = of_type(run_id, "llm.turn.completed")
    assert [t["usage"] for t in turns] == [usage, usage] and [t["cost_usd"] for t in turns] == [0.0034, 0.0034]
    completed = of_type(run_id, "run.completed")[0]
    assert completed["usage"] == {"input_tokens": 2000, "output_tokens": 500, "cached_input_tokens": 800}
    assert completed["total_cost_usd"] == 0.0068 and completed["credits_used"] == 7
    done = run(run_id)
    assert done.total_cost_usd == Decimal("0.0068") and done.credits_used == 7
    assert (done.total_input_tokens, done.total_output_tokens, done.total_cached_input_tokens) == (2000, 500, 800)
    assert done.cache_hit_rate == 0.4


def test_credits_round_up(alice, priced_stub):
    _, run_id = start(alice, stub(reply="ok", usage={"input_tokens": 1, "output_tokens": 0}), route_id="priced-stub")
    run_once()
    assert of_type(run_id, "run.completed")[0]["credits_used"] == 1  # ceil(0.000002 · 1000)


def test_without_scripted_usage_tokens_are_counted_from_the_text(alice):
    _, run_id = start(alice, "count these words")
    run_once()
    usage = of_type(run_id, "llm.turn.completed")[0]["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert run(run_id).total_input_tokens == usage["input_tokens"]


def test_max_iterations_fails_the_run_with_budget_exceeded(alice, persona):
    single = persona("single-turn", limits={"max_turns": 1})
    _, run_id = start(alice, stub(tools=[{"name": "echo", "arguments": {"text": "x"}}], reply="never"),
                      persona_id=single)
    run_once()
    assert of_type(run_id, "run.failed")[0]["error_class"] == "budget.exceeded"
    assert run(run_id).error_class == "budget.exceeded"


def test_each_run_answers_the_latest_message_of_its_thread(alice):
    thread_id, first = start(alice, "first")
    run_once()
    _, second = start(alice, "second", thread_id=thread_id)
    run_once()
    assert answer(first).content == "You said: first" and answer(second).content == "You said: second"


def test_input_that_never_comes_times_out(alice, settings):
    from runs.runner.recovery import runs_fail_timed_out_inputs

    _, run_id = start(alice, stub(ask="Still there?"))
    run_once()
    settings.ARKLOOP_INPUT_TIMEOUT_SECONDS = 0
    assert runs_fail_timed_out_inputs() == [run_id]
    assert run(run_id).status == "failed" and of_type(run_id, "run.failed")[0]["error_class"] == "input.timeout"


def test_a_cancelling_run_found_at_claim_is_cancelled(alice):
    from runs.events import event_append

    _, run_id = start(alice, "hi")
    event_append(run_id=run_id, type="run.cancel_requested", status="cancelling")
    run_once()
    assert types(run_id)[-1] == "run.cancelled" and run(run_id).status == "cancelled"


def test_repeat_makes_the_tools_turn_that_many_times_before_the_reply(alice):
    _, run_id = start(alice, stub(tools=[{"name": "echo", "arguments": {"text": "again"}}], repeat=3, reply="done"))
    run_once()
    assert [r["result"] for r in of_type(run_id, "tool.result")] == ["again"] * 3
    assert len(of_type(run_id, "llm.turn.completed")) == 4 and answer(run_id).content == "done"


@pytest.mark.parametrize("key,value", [
    ("delay_ms", 1e12), ("delay_ms", float("inf")), ("delay_ms", -1), ("delay_ms", "5"),
    ("chunks", 0), ("chunks", 10_001), ("chunks", 2.5), ("repeat", 0), ("repeat", 1001),
    ("usage", {"input_tokens": float("inf")}), ("usage", {"output_tokens": 1.5}), ("usage", {"output_tokens": -1}),
    ("usage", {"input_tokens": 10**9 + 1}), ("usage", {"tokens": 1}), ("usage", [1]),
    ("tools", [{"name": "echo", "arguments": {}}] * 65), ("tools", [{"arguments": {}}]), ("tools", "echo"),
    ("fail", "x" * 65), ("reply", 7), ("ask", ["?"]), ("fail_times", -1),
])
def test_a_script_outside_the_bounds_fails_the_run_naming_the_key(alice, key, value):
    _, run_id = start(alice, stub(**{key: value, **({} if key == "reply" else {"reply": "never"})}))
    run_once()
    failed = of_type(run_id, "run.failed")
    assert [f["error_class"] for f in failed] == ["provider.bad_request"], failed
    assert f"`{key}`" in failed[0]["message"]
    assert "run.llm.retry" not in types(run_id) and run(run_id).attempt == 1
    assert_gapless(run_id)


def test_the_bounds_themselves_are_accepted(alice):
    script = stub(delay_ms=0, chunks=10_000, repeat=1, reply="edge", fail_times=0,
                  usage={"input_tokens": 10**9, "output_tokens": 0, "cached_input_tokens": 0})
    _, run_id = start(alice, script)
    run_once()
    assert run(run_id).status == "completed" and run(run_id).total_input_tokens == 10**9


def test_a_reply_over_one_mebibyte_is_refused_by_the_script_check():
    from runs.runner.providers.base import ProviderError
    from runs.runner.providers.stub import script_check

    script_check({"reply": "x" * 1024 * 1024})
    with pytest.raises(ProviderError, match="`reply`"):
        script_check({"reply": "é" * (512 * 1024 + 1)})  # bytes of UTF-8, not characters
