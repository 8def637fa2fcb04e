"""Runs calling MCP tools (SPEC §12) through the stub provider and an in-process runner, against the
real MCP test server: results, approval modes, permissions, and every failure class."""
from __future__ import annotations

import uuid

import pytest

from personas.models import Persona
from tests.fakes.mcp_server import TOKEN
from tests.mcp.helpers import closed_url, register, silent_url
from tests.runner.helpers import assert_gapless, events, of_type, provide_input, run, run_once, start, stub, types
from tests.runner.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def call(name: str, **arguments) -> dict:
    return {"name": name, "arguments": arguments}


def run_tools(actor, *calls: dict, reply: str = "done", **body) -> str:
    """A run whose first turn makes `calls`, then replies; executed by an in-process runner."""
    _, run_id = start(actor, stub(tools=list(calls), reply=reply), **body)
    run_once()
    return run_id


def outcomes(run_id: str) -> dict[str, dict]:
    """tool name → its tool.result or tool.denied data (without the trace id)."""
    found = {}
    for type, data in events(run_id):
        if type in ("tool.result", "tool.denied"):
            found[data["tool_name"]] = {k: v for k, v in data.items() if k not in ("trace_id", "tool_call_id")}
    return found


def text(result: dict) -> str:
    return "".join(block.get("text", "") for block in result["content"])


def test_a_read_only_tool_runs_and_its_result_is_recorded(alice, mcp_server):
    register(alice, mcp_server.url)
    run_id = run_tools(alice, call("mcp__calc__add", a=2, b=3.5))
    assert of_type(run_id, "tool.call")[0]["arguments"] == {"a": 2, "b": 3.5}
    assert outcomes(run_id)["mcp__calc__add"] == {
        "tool_name": "mcp__calc__add", "result": {"content": [{"type": "text", "text": "5.5"}], "is_error": False}}
    assert run(run_id).status == "completed" and mcp_server.calls("add", a=2, b=3.5) == 1
    assert TOKEN not in str(events(run_id))
    assert_gapless(run_id)


def test_a_members_runs_use_the_servers_the_admin_registered(alice, bob, mcp_server):
    register(alice, mcp_server.url)
    run_id = run_tools(bob, call("mcp__calc__add", a=4, b=4))
    assert text(outcomes(run_id)["mcp__calc__add"]["result"]) == "8.0" and run(run_id).status == "completed"


def test_a_tool_that_raises_answers_a_result_marked_is_error(alice, mcp_server):
    register(alice, mcp_server.url)
    run_id = run_tools(alice, call("mcp__calc__fail", reason="on purpose"))
    result = outcomes(run_id)["mcp__calc__fail"]["result"]
    assert result["is_error"] is True and "fail" in text(result)
    assert run(run_id).status == "completed"


def test_text_a_database_cannot_hold_is_replaced_not_fatal(alice, mcp_server):
    register(alice, mcp_server.url)
    run_id = run_tools(alice, call("mcp__calc__odd_text"))
    assert text(outcomes(run_id)["mcp__calc__odd_text"]["result"]) == "nul:\ufffd end"
    assert run(run_id).status == "completed"


def test_unless_read_only_waits_for_approval_of_a_tool_without_the_hint(alice, mcp_server):
    register(alice, mcp_server.url)
    note = f"note {uuid.uuid4().hex}"
    run_id = run_tools(alice, call("mcp__calc__write_note", text=note))
    waiting = of_type(run_id, "run.waiting_for_input")
    assert run(run_id).status == "waiting_for_input" and waiting[0]["kind"] == "tool_confirmation"
    assert (waiting[0]["tool_name"], waiting[0]["arguments"]) == ("mcp__calc__write_note", {"text": note})
    assert mcp_server.calls("write_note", text=note) == 0
    provide_input(alice, run_id, "approve")
    run_once()
    assert text(outcomes(run_id)["mcp__calc__write_note"]["result"]) == f"saved: {note}"
    assert run(run_id).status == "completed" and mcp_server.calls("write_note", text=note) == 1


def test_a_tool_the_user_does_not_approve_is_denied_and_never_called(alice, mcp_server):
    register(alice, mcp_server.url)
    note = f"note {uuid.uuid4().hex}"
    run_id = run_tools(alice, call("mcp__calc__write_note", text=note))
    provide_input(alice, run_id, "no thanks")
    run_once()
    assert "did not approve" in outcomes(run_id)["mcp__calc__write_note"]["reason"]
    assert run(run_id).status == "completed" and mcp_server.calls("write_note", text=note) == 0


def test_always_asks_even_for_a_read_only_tool(alice, mcp_server):
    register(alice, mcp_server.url, require_approval="always")
    run_id = run_tools(alice, call("mcp__calc__add", a=1, b=1))
    assert run(run_id).status == "waiting_for_input" and of_type(run_id, "run.waiting_for_input")[0]["tool_name"] == (
        "mcp__calc__add")


def test_never_runs_a_tool_without_the_hint_at_once(alice, mcp_server):
    register(alice, mcp_server.url, require_approval="never")
    note = f"note {uuid.uuid4().hex}"
    run_id = run_tools(alice, call("mcp__calc__write_note", text=note))
    assert "run.waiting_for_input" not in types(run_id) and run(run_id).status == "completed"
    assert mcp_server.calls("write_note", text=note) == 1


def test_the_personas_confirm_tools_patterns_ask_too(alice, mcp_server):
    Persona.objects.create(key="wary", version=1, route_id="stub", tools=["mcp__*"], confirm_tools=["mcp__calc__*"])
    register(alice, mcp_server.url, require_approval="never")
    run_id = run_tools(alice, call("mcp__calc__add", a=1, b=2), persona_id="wary")
    assert run(run_id).status == "waiting_for_input"


def test_names_not_allowed_or_of_no_server_of_the_org_are_denied(alice, charlie, mcp_server):
    register(alice, mcp_server.url, allowed_tools=["add"])
    register(charlie, mcp_server.url, name="globex")  # another org's server: not alice's to call
    note = f"note {uuid.uuid4().hex}"
    run_id = run_tools(alice, call("mcp__calc__write_note", text=note), call("mcp__globex__add", a=1, b=1),
                       call("mcp__nope__add", a=1, b=1), call("mcp__calc__add", a=40, b=2))
    found = outcomes(run_id)
    assert "allowed_tools" in found["mcp__calc__write_note"]["reason"]
    assert "no MCP server" in found["mcp__globex__add"]["reason"] and "no MCP server" in found["mcp__nope__add"][
        "reason"]
    assert text(found["mcp__calc__add"]["result"]) == "42.0"
    assert run(run_id).status == "completed" and mcp_server.calls("write_note", text=note) == 0


def test_a_persona_allows_mcp_tools_only_by_its_patterns(alice, mcp_server):
    Persona.objects.create(key="calc-only", version=1, route_id="stub", tools=["echo", "mcp__calc__*"])
    register(alice, mcp_server.url)
    register(alice, mcp_server.url, name="other")
    run_id = run_tools(alice, call("mcp__calc__add", a=1, b=2), call("mcp__other__add", a=1, b=2),
                       persona_id="calc-only")
    assert outcomes(run_id)["mcp__calc__add"]["result"]["is_error"] is False
    assert "not allowed for this persona" in outcomes(run_id)["mcp__other__add"]["reason"]
    careful = run_tools(alice, call("mcp__calc__add", a=1, b=2), persona_id="careful")  # no mcp__ pattern at all
    assert "not allowed for this persona" in outcomes(careful)["mcp__calc__add"]["reason"]


def test_an_unreachable_server_answers_mcp_unavailable_and_others_are_unaffected(alice, mcp_server):
    register(alice, closed_url(), name="down")
    register(alice, mcp_server.url)
    run_id = run_tools(alice, call("mcp__down__add", a=1, b=2), call("mcp__calc__add", a=20, b=1))
    down = outcomes(run_id)["mcp__down__add"]["error"]
    assert down["error_class"] == "mcp.unavailable" and "down" in down["message"]
    assert text(outcomes(run_id)["mcp__calc__add"]["result"]) == "21.0"
    assert run(run_id).status == "completed"
    assert_gapless(run_id)


def test_a_call_past_the_servers_timeout_is_tool_timeout_and_the_next_call_reconnects(alice, mcp_server):
    register(alice, mcp_server.url, timeout_seconds=1)
    tag = uuid.uuid4().hex
    run_id = run_tools(alice, call("mcp__calc__sleep", seconds=20, tag=tag), call("mcp__calc__add", a=1, b=1))
    timed_out = outcomes(run_id)["mcp__calc__sleep"]["error"]
    assert timed_out["error_class"] == "tool.timeout" and "within 1 s" in timed_out["message"]
    assert text(outcomes(run_id)["mcp__calc__add"]["result"]) == "2.0"
    assert run(run_id).status == "completed"
    wait_until(lambda: mcp_server.interrupted("sleep", tag=tag) == 1, what="the server to see the call go away")


def test_a_stalled_server_costs_only_its_own_calls(alice, mcp_server):
    with silent_url() as stalled:
        register(alice, stalled.url, name="stalled", timeout_seconds=1, require_approval="never")
        register(alice, mcp_server.url)
        run_id = run_tools(alice, call("mcp__stalled__anything"), call("mcp__calc__add", a=2, b=2))
    assert outcomes(run_id)["mcp__stalled__anything"]["error"]["error_class"] == "mcp.unavailable"
    assert text(outcomes(run_id)["mcp__calc__add"]["result"]) == "4.0"
    assert run(run_id).status == "completed"


def test_a_stalled_server_is_waited_for_once_not_by_every_run_and_turn(alice, mcp_server):
    """Three runs of two turns each, started together: one listing of the stalled server is shared,
    its failure is remembered, and no later turn or run connects to it again."""
    with silent_url() as stalled:
        register(alice, stalled.url, name="stalled", timeout_seconds=1)
        register(alice, mcp_server.url)
        run_ids = [start(alice, stub(tools=[call("mcp__calc__add", a=i, b=1)], reply="ok"))[1] for i in range(3)]
        run_once()
        assert [run(run_id).status for run_id in run_ids] == ["completed"] * 3
        assert len(stalled.connections) == 1


def test_a_tool_the_server_does_not_offer_is_an_mcp_error(alice, mcp_server):
    register(alice, mcp_server.url)
    run_id = run_tools(alice, call("mcp__calc__no_such_tool"))
    error = outcomes(run_id)["mcp__calc__no_such_tool"]["error"]
    assert error["error_class"] == "mcp.error" and "no_such_tool" in error["message"]
    assert run(run_id).status == "completed"


def test_the_runs_timeout_interrupts_an_mcp_call_in_flight(alice, mcp_server):
    register(alice, mcp_server.url, timeout_seconds=120)
    tag = uuid.uuid4().hex
    run_id = run_tools(alice, call("mcp__calc__sleep", seconds=30, tag=tag), limits={"timeout_seconds": 1})
    failed = of_type(run_id, "run.failed")[0]
    assert (failed["error_class"], failed["limit"]) == ("budget.exceeded", "timeout_seconds")
    assert of_type(run_id, "tool.result") == []
    wait_until(lambda: mcp_server.interrupted("sleep", tag=tag) == 1, what="the server to see the call go away")


def test_mcp_calls_count_against_max_tool_calls(alice, mcp_server):
    register(alice, mcp_server.url)
    run_id = run_tools(alice, call("mcp__calc__add", a=1, b=1), call("mcp__calc__add", a=2, b=2),
                       limits={"max_tool_calls": 1})
    assert len(of_type(run_id, "tool.result")) == 1
    assert of_type(run_id, "run.failed")[0]["limit"] == "max_tool_calls"
