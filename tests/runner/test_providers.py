"""The openai and anthropic providers against local fake servers, through the official SDKs
(real HTTP, each API's own streaming format), driven by an in-process runner."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from personas.models import Route
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.runner.helpers import answer, assert_gapless, deltas, events, of_type, run, run_once, start

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "sk-fake-secret-0123456789"
FAKES = {"openai": FakeOpenAI, "anthropic": FakeAnthropic}


@pytest.fixture(params=["openai", "anthropic"])
def provider(request, monkeypatch):
    """A running fake of the parameter's API and a route `fake` to it (key from the environment)."""
    monkeypatch.setenv("ARKLOOP_ROUTE_FAKE", SECRET)
    with FAKES[request.param]() as fake:
        Route.objects.create(id="fake", provider=request.param, model=f"{request.param}-fake-1",
                             base_url=fake.base_url, api_key_env="ARKLOOP_ROUTE_FAKE", price_input=Decimal("1"),
                             price_cached_input=Decimal("0.1"), price_output=Decimal("4"))
        fake.kind = request.param
        yield fake


def test_streams_the_reply_and_records_cached_usage(alice, provider):
    provider.turns = [{"text": "Streaming through the real SDK works.",
                       "usage": {"input_tokens": 1200, "output_tokens": 30, "cached_input_tokens": 1000}}]
    _, run_id = start(alice, "hello", route_id="fake")
    run_once()
    assert "".join(deltas(run_id)) == answer(run_id).content == "Streaming through the real SDK works."
    assert of_type(run_id, "run.route.selected")[0]["provider"] == provider.kind
    turn = of_type(run_id, "llm.turn.completed")[0]
    assert turn["usage"] == {"input_tokens": 1200, "output_tokens": 30, "cached_input_tokens": 1000}
    assert turn["cost_usd"] == 0.00042  # (200·1 + 1000·0.1 + 30·4) / 1e6
    assert run(run_id).total_cached_input_tokens == 1000
    assert_gapless(run_id)


def test_request_carries_persona_prompt_conversation_tools_and_key(alice, provider):
    _, run_id = start(alice, "what is the weather", route_id="fake")
    run_once()
    request, headers = provider.requests[0], provider.headers[0]
    assert request["model"] == f"{provider.kind}-fake-1" and request["stream"] is True
    text = json.dumps(request)
    assert "You are a helpful, concise assistant" in text and "what is the weather" in text
    assert {t.get("name") or t["function"]["name"] for t in request["tools"]} == {
        "echo", "calculator", "current_time", "ask_user"}
    assert SECRET in (headers.get("authorization", "") + headers.get("x-api-key", ""))
    assert SECRET not in json.dumps(events(run_id))


def test_tool_call_round_trip(alice, provider):
    provider.turns = [{"tool_calls": [{"id": "call_abc", "name": "calculator", "arguments": {"expression": "6*7"}}]},
                      {"text": "It is 42."}]
    _, run_id = start(alice, "what is 6*7?", route_id="fake")
    run_once()
    assert of_type(run_id, "tool.call")[0]["arguments"] == {"expression": "6*7"}
    assert of_type(run_id, "tool.result")[0] == {"tool_call_id": "call_abc", "tool_name": "calculator", "result": 42,
                                                 "trace_id": run(run_id).trace_id}
    assert answer(run_id).content == "It is 42."
    second = json.dumps(provider.requests[1])
    assert "call_abc" in second and "42" in second  # the tool result went back to the model


def test_multi_turn_history_reaches_the_model(alice, provider):
    provider.turns = [{"text": "Nice to meet you, Ada."}, {"text": "You are Ada."}]
    thread_id, first = start(alice, "My name is Ada.", route_id="fake")
    run_once()
    start(alice, "What is my name?", thread_id=thread_id, route_id="fake")
    run_once()
    messages = provider.requests[1]["messages"]
    said = [(m["role"], m["content"] if isinstance(m["content"], str) else m["content"][0]["text"])
            for m in messages if m["role"] != "system"]
    assert said == [("user", "My name is Ada."), ("assistant", "Nice to meet you, Ada."), ("user", "What is my name?")]


def test_rate_limit_is_retried_then_succeeds(alice, provider):
    provider.fail_statuses = [429]
    _, run_id = start(alice, "hi", route_id="fake")
    run_once()
    [retry] = of_type(run_id, "run.llm.retry")
    assert retry["error_class"] == "provider.rate_limited" and retry["attempt"] == 1
    assert run(run_id).status == "completed" and len(provider.requests) == 2


def test_server_errors_that_persist_fail_the_run_as_unavailable(alice, provider):
    provider.always_status = 500
    _, run_id = start(alice, "hi", route_id="fake")
    run_once()
    assert len(of_type(run_id, "run.llm.retry")) == 2 and len(provider.requests) == 3
    failed = of_type(run_id, "run.failed")[0]
    assert failed["error_class"] == "provider.unavailable" and run(run_id).error_class == "provider.unavailable"


def test_bad_key_fails_without_retry_and_without_leaking_it(alice, provider):
    provider.always_status = 401
    _, run_id = start(alice, "hi", route_id="fake")
    run_once()
    assert of_type(run_id, "run.llm.retry") == [] and len(provider.requests) == 1
    assert run(run_id).error_class == "provider.auth_failed"
    assert SECRET not in json.dumps(events(run_id))


def test_unreachable_endpoint_fails_as_unavailable(alice, provider):
    Route.objects.filter(pk="fake").update(base_url="http://127.0.0.1:9/v1")
    _, run_id = start(alice, "hi", route_id="fake")
    run_once()
    assert run(run_id).error_class == "provider.unavailable"


def test_max_tokens_is_capped_at_what_the_output_budget_leaves(alice, provider):
    provider.turns = [{"tool_calls": [{"id": "call_1", "name": "echo", "arguments": {"text": "hi"}}],
                       "usage": {"input_tokens": 10, "output_tokens": 200, "cached_input_tokens": 0}},
                      {"text": "done", "usage": {"input_tokens": 10, "output_tokens": 20, "cached_input_tokens": 0}}]
    _, run_id = start(alice, "go", route_id="fake", limits={"max_output_tokens": 300})
    run_once()
    assert [request["max_tokens"] for request in provider.requests] == [300, 100]  # the persona's 1024 per call
    assert run(run_id).status == "completed"


def test_the_timeout_interrupts_a_streaming_provider_call(alice, provider):
    provider.turns = [{"text": "word " * 40, "chunk_delay": 0.2}]
    _, run_id = start(alice, "go", route_id="fake", limits={"timeout_seconds": 1})
    run_once()
    failed = of_type(run_id, "run.failed")[0]
    assert (failed["error_class"], failed["limit"]) == ("budget.exceeded", "timeout_seconds")
    assert "".join(deltas(run_id)) != "word " * 40
    assert_gapless(run_id)
