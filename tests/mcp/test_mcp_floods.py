"""A hostile MCP server cannot make the shared runner read more than the caps from it: a huge answer
is cut off while it is being read (the server sees the connection closed), the call or listing fails
cleanly, and the run and the org's other servers go on."""
from __future__ import annotations

import pytest

from mcp_servers.client import MAX_RESPONSE_BYTES, MAX_SESSION_BYTES
from tests.fakes.mcp_flood import FloodServer
from tests.mcp.helpers import register
from tests.mcp.test_mcp_runs import call, outcomes, run_tools, text
from tests.runner.helpers import run

pytestmark = pytest.mark.django_db(transaction=True)

# What the kernel may hold between the server's writes and the client's reads (socket buffers on both
# sides) on top of what the client read: generous, and still far below the flood's 64 MiB.
BUFFERS = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def flood() -> FloodServer:
    with FloodServer() as server:
        yield server


def assert_cut_off(flood: FloodServer, mode: str, cap: int) -> None:
    """Every flood was cut off after about `cap` bytes (a run may list a server twice)."""
    assert flood.cut[mode], f"the client read all {flood.sent[mode]} bytes of the {mode} flood"
    assert flood.sent[mode] <= flood.floods[mode] * (cap + BUFFERS)


def flood_error(actor, mcp_server, url: str, tool: str, **fields) -> dict:
    """Run a call of the flooding server's `tool` next to one of the good server's: the good one answers,
    the run completes; the flooding call's recorded error."""
    register(actor, url, name="flood", **fields)
    register(actor, mcp_server.url)
    run_id = run_tools(actor, call(f"mcp__flood__{tool}"), call("mcp__calc__add", a=1, b=2))
    assert text(outcomes(run_id)["mcp__calc__add"]["result"]) == "3.0"
    assert run(run_id).status == "completed"
    return outcomes(run_id)[f"mcp__flood__{tool}"]["error"]


@pytest.mark.parametrize("mode", ["length", "chunked", "sse"])
def test_a_call_answered_with_a_flood_is_cut_off_as_an_mcp_error(alice, mcp_server, flood, mode):
    error = flood_error(alice, mcp_server, flood.url(mode), "flood", require_approval="never")
    assert error == {"error_class": "mcp.error", "message": f"MCP server 'flood' sent more than {MAX_RESPONSE_BYTES} "
                                                           f"bytes in one response; it was cut off"}
    assert_cut_off(flood, mode, MAX_RESPONSE_BYTES)


def test_a_compressed_answer_is_refused_not_inflated(alice, mcp_server, flood):
    error = flood_error(alice, mcp_server, flood.url("gzip"), "flood", require_approval="never")
    assert error == {"error_class": "mcp.error", "message": "MCP server 'flood' sent a compressed response "
                                                           "(Content-Encoding: gzip), which is not accepted"}
    assert flood.floods["gzip"] == 1


def test_a_listing_of_huge_pages_is_cut_off_as_mcp_unavailable(alice, mcp_server, flood):
    error = flood_error(alice, mcp_server, flood.url("pages"), "tool0")  # unless_read_only: needs the listing
    assert error == {"error_class": "mcp.unavailable", "message": f"MCP server 'flood' sent more than "
                     f"{MAX_SESSION_BYTES} bytes in all for one listing or call; it was cut off"}
    assert_cut_off(flood, "pages", MAX_SESSION_BYTES)


def test_listing_huge_pages_through_the_api_is_502_mcp_unavailable(alice, flood):
    server = register(alice, flood.url("pages"), name="flood")
    response = alice.client.get(f"/v1/mcp-servers/{server['id']}/tools")
    assert response.status_code == 502 and response.json()["code"] == "mcp.unavailable"
    assert f"more than {MAX_SESSION_BYTES} bytes" in response.json()["message"]
    assert_cut_off(flood, "pages", MAX_SESSION_BYTES)
