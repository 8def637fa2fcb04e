"""MCP tools reach real provider SDKs (OpenAI, Anthropic; local fakes over HTTP) as tools with their
input schemas, named mcp__<server>__<tool>, and a model's call of one round-trips to the MCP server."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from personas.models import Route
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.mcp.helpers import closed_url, register
from tests.runner.helpers import answer, of_type, run, run_once, start

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=[FakeOpenAI, FakeAnthropic], ids=["openai", "anthropic"])
def provider(request, monkeypatch):
    monkeypatch.setenv("ARKLOOP_ROUTE_FAKE", "sk-fake")
    with request.param() as fake:
        kind = "openai" if request.param is FakeOpenAI else "anthropic"
        Route.objects.create(id="fake", provider=kind, model="fake-1", base_url=fake.base_url,
                             api_key_env="ARKLOOP_ROUTE_FAKE", price_input=Decimal("1"), price_output=Decimal("1"))
        yield fake


def offered(request: dict) -> dict[str, dict]:
    """tool name → its schema, in either API's shape."""
    tools = {}
    for tool in request.get("tools", []):
        if "function" in tool:
            tools[tool["function"]["name"]] = tool["function"]["parameters"]
        else:
            tools[tool["name"]] = tool["input_schema"]
    return tools


def test_mcp_tools_are_offered_with_their_schemas_and_called_by_the_model(alice, provider, mcp_server):
    register(alice, mcp_server.url, allowed_tools=["add", "write_note"])
    register(alice, closed_url(), name="down")  # cannot be listed: offers nothing, the run goes on
    provider.turns = [{"tool_calls": [{"id": "call_1", "name": "mcp__calc__add", "arguments": {"a": 6, "b": 7}}]},
                      {"text": "It is 13."}]
    _, run_id = start(alice, "what is 6+7?", route_id="fake")
    run_once()
    tools = offered(provider.requests[0])
    assert {"echo", "calculator", "mcp__calc__add", "mcp__calc__write_note"} <= set(tools)
    assert not any(name.startswith(("mcp__calc__sleep", "mcp__down__")) for name in tools)
    assert tools["mcp__calc__add"]["type"] == "object" and set(tools["mcp__calc__add"]["properties"]) == {"a", "b"}
    assert of_type(run_id, "tool.result")[0]["result"]["content"][0]["text"] == "13.0"
    assert "13.0" in json.dumps(provider.requests[1])  # the result went back to the model
    assert run(run_id).status == "completed" and answer(run_id).content == "It is 13."


def test_an_edit_is_seen_by_the_next_run(alice, provider, mcp_server):
    server = register(alice, mcp_server.url, allowed_tools=["add"])
    start(alice, "first", route_id="fake")
    run_once()
    alice.client.patch(f"/v1/mcp-servers/{server['id']}", {"name": "maths", "allowed_tools": None}, format="json")
    start(alice, "second", route_id="fake")
    run_once()
    first, second = offered(provider.requests[0]), offered(provider.requests[1])
    assert "mcp__calc__add" in first and "mcp__calc__sleep" not in first
    assert {"mcp__maths__add", "mcp__maths__sleep"} <= set(second) and "mcp__calc__add" not in second
