"""ARKLOOP_MAX_MCP_SERVERS_PER_ORG: runners list (and keep in memory) the tools of every MCP server
of an org, so an org may not register servers without end."""
from __future__ import annotations

import pytest

from mcp_servers.models import McpServer
from tests.conftest import make_actor
from tests.mcp.helpers import register
from tests.runs.test_run_concurrency import create_call, in_parallel

URL = "https://tools.example.com/mcp"


@pytest.fixture(autouse=True)
def cap_of_two(settings) -> None:
    settings.ARKLOOP_MAX_MCP_SERVERS_PER_ORG = 2


def test_the_server_past_the_cap_is_422_and_not_stored(alice, charlie):
    first, _ = register(alice, URL, name="one"), register(alice, URL, name="two")
    response = alice.client.post("/v1/mcp-servers", {"name": "three", "url": URL}, format="json")
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "validation.error" and "at most 2 MCP servers" in body["message"]
    assert body["details"]["fields"] == {"non_field_errors": ["an org may have at most 2 MCP servers"]}
    assert list(McpServer.objects.filter(org=alice.org).order_by("name").values_list("name", flat=True)) == [
        "one", "two"]
    register(charlie, URL, name="one"), register(charlie, URL, name="two")  # another org has its own two
    assert alice.client.delete(f"/v1/mcp-servers/{first['id']}").status_code == 204
    register(alice, URL, name="three")  # a deleted one frees its place


def test_no_cap_when_zero(alice, settings):
    settings.ARKLOOP_MAX_MCP_SERVERS_PER_ORG = 0
    for name in ("a", "b", "c"):
        register(alice, URL, name=name)


def test_parallel_creates_never_pass_the_cap(transactional_db):
    alice = make_actor(org="acme", email="alice@acme.test", role="admin")
    bodies = [{"name": f"s{n}", "url": URL} for n in range(8)]
    statuses = in_parallel([create_call(alice.key, "/v1/mcp-servers", body) for body in bodies])
    assert sorted(statuses) == [201] * 2 + [422] * 6
    assert McpServer.objects.filter(org=alice.org).count() == 2
