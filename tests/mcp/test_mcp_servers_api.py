"""/v1/mcp-servers (SPEC §12): org admins register MCP servers; header values are never shown again."""
from __future__ import annotations

import json

import pytest

from mcp_servers.models import McpServer
from tests.fakes.mcp_server import TOKEN, McpServerProcess
from tests.mcp.helpers import AUTH, closed_url, register, silent_url

FIELDS = {"id", "name", "url", "header_names", "allowed_tools", "require_approval", "timeout_seconds", "created_at"}


def test_admin_registers_a_server_whose_header_values_are_never_shown(alice):
    response = alice.client.post("/v1/mcp-servers", {"name": "calc", "url": "https://tools.example.com/mcp",
                                                     "headers": AUTH}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 201, response.content
    server = response.json()
    assert set(server) == FIELDS
    assert server["header_names"] == ["Authorization"]
    assert (server["allowed_tools"], server["require_approval"], server["timeout_seconds"]) == (
        None, "unless_read_only", 30)
    replay = alice.client.post("/v1/mcp-servers", {"name": "calc", "url": "https://tools.example.com/mcp",
                                                   "headers": AUTH}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert replay.json()["id"] == server["id"] and McpServer.objects.count() == 1
    shown = [response, replay, alice.client.get("/v1/mcp-servers"), alice.client.get(f"/v1/mcp-servers/{server['id']}")]
    assert all(TOKEN not in r.content.decode() for r in shown)
    stored = McpServer.objects.get(pk=server["id"])
    assert TOKEN not in stored.headers_encrypted and TOKEN not in repr(stored)


def test_every_field_can_be_set_on_create(alice):
    server = register(alice, "https://tools.example.com/mcp", name="my_tools-2", allowed_tools=["add", "add", "sub"],
                      require_approval="always", timeout_seconds=300)
    assert server["name"] == "my_tools-2" and server["allowed_tools"] == ["add", "sub"]
    assert (server["require_approval"], server["timeout_seconds"]) == ("always", 300)


@pytest.mark.parametrize("field,value", [
    ("name", "Calc"), ("name", "a" * 33), ("name", ""), ("name", "a b"), ("name", "calc\n"), ("name", "ca\x00lc"),
    ("name", 7), ("url", "ftp://tools.example.com/"), ("url", "tools.example.com/mcp"), ("url", 5),
    ("url", "https://tools.example.com/" + "a" * 2048), ("url", "https://user:pw@tools.example.com/mcp"),
    ("headers", ["Authorization"]), ("headers", {"Host": "x"}), ("headers", {"X-Key": "a\r\nInjected: 1"}),
    ("headers", {"X-Key": 5}), ("headers", {"bad name": "x"}), ("headers", {"X-Key": "\ud800"}),
    ("headers", {"X-Key": "a", "x-key": "b"}), ("allowed_tools", "add"), ("allowed_tools", [""]),
    ("allowed_tools", [5]), ("allowed_tools", ["a b"]), ("require_approval", "sometimes"),
    ("timeout_seconds", 0), ("timeout_seconds", 301), ("timeout_seconds", "30"), ("timeout_seconds", True),
    ("colour", "red"),
])
def test_invalid_input_is_422_naming_the_field(alice, field, value):
    body = json.dumps({"name": "calc", "url": "https://tools.example.com/mcp", field: value})  # \ud800 escaped
    response = alice.client.generic("POST", "/v1/mcp-servers", body, content_type="application/json")
    assert response.status_code == 422, response.content
    named = response.json()["details"]["fields"]  # the field, or a path inside it ("headers.X-Key")
    assert response.json()["code"] == "validation.error" and field in {name.split(".")[0] for name in named}
    assert not McpServer.objects.exists()


def test_names_are_unique_in_an_org_only(alice, charlie):
    first = register(alice, "https://a.example.com/mcp", name="calc")
    again = alice.client.post("/v1/mcp-servers", {"name": "calc", "url": "https://b.example.com/mcp"}, format="json")
    assert again.status_code == 422 and "name" in again.json()["details"]["fields"]
    register(charlie, "https://c.example.com/mcp", name="calc")  # another org: its own namespace
    other = register(alice, "https://d.example.com/mcp", name="other")
    rename = alice.client.patch(f"/v1/mcp-servers/{other['id']}", {"name": "calc"}, format="json")
    assert rename.status_code == 422 and "name" in rename.json()["details"]["fields"]
    assert alice.client.patch(f"/v1/mcp-servers/{first['id']}", {"name": "calc"}, format="json").status_code == 200


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/mcp", "http://10.0.0.7/mcp", "http://localhost/mcp",
                                 "http://[::1]/mcp", "http://169.254.169.254/latest"])
def test_private_addresses_are_refused_unless_allowed(alice, settings, url):
    settings.ARKLOOP_ALLOW_PRIVATE_URLS = False
    response = alice.client.post("/v1/mcp-servers", {"name": "calc", "url": url}, format="json")
    assert response.status_code == 422 and "url" in response.json()["details"]["fields"]


def test_patch_changes_only_what_it_names_and_headers_are_replaced_whole(alice, settings):
    server = register(alice, "https://tools.example.com/mcp", allowed_tools=["add"])
    path = f"/v1/mcp-servers/{server['id']}"
    changed = alice.client.patch(path, {"timeout_seconds": 5, "require_approval": "never", "allowed_tools": None},
                                 format="json").json()
    assert (changed["timeout_seconds"], changed["require_approval"], changed["allowed_tools"]) == (5, "never", None)
    assert changed["header_names"] == ["Authorization"] and changed["url"] == server["url"]
    assert alice.client.patch(path, {"headers": {"X-Api-Key": "k2"}}, format="json").json()["header_names"] == [
        "X-Api-Key"]
    assert alice.client.patch(path, {"headers": {}}, format="json").json()["header_names"] == []
    settings.ARKLOOP_ALLOW_PRIVATE_URLS = False
    refused = alice.client.patch(path, {"url": "http://192.168.1.1/mcp"}, format="json")
    assert refused.status_code == 422 and "url" in refused.json()["details"]["fields"]
    assert alice.client.get(path).json()["url"] == server["url"]


def test_delete_removes_the_server(alice):
    server = register(alice, "https://tools.example.com/mcp")
    assert alice.client.delete(f"/v1/mcp-servers/{server['id']}").status_code == 204
    gone = alice.client.get(f"/v1/mcp-servers/{server['id']}")
    assert gone.status_code == 404 and gone.json()["code"] == "mcp_servers.not_found"


def test_list_is_newest_first_in_keyset_pages(alice):
    ids = [register(alice, f"https://{n}.example.com/mcp", name=n)["id"] for n in ("one", "two", "three")]
    first = alice.client.get("/v1/mcp-servers?limit=2")
    assert [s["id"] for s in first.json()] == ids[::-1][:2]
    assert 'rel="next"' in first["Link"] and f"before={ids[1]}" in first["Link"]
    second = alice.client.get(f"/v1/mcp-servers?limit=2&before={ids[1]}")
    assert [s["id"] for s in second.json()] == [ids[0]] and not second.has_header("Link")
    assert alice.client.get("/v1/mcp-servers?before=nope").status_code == 422
    assert alice.client.get("/v1/mcp-servers?limit=0").status_code == 422


def test_a_member_gets_403_on_every_endpoint_and_nothing_changes(alice, bob):
    server = register(alice, "https://tools.example.com/mcp")
    path = f"/v1/mcp-servers/{server['id']}"
    answers = [bob.client.get("/v1/mcp-servers"), bob.client.get(path), bob.client.get(f"{path}/tools"),
               bob.client.post("/v1/mcp-servers", {"name": "mine", "url": "https://x.example.com/mcp"}, format="json"),
               bob.client.patch(path, {"name": "stolen"}, format="json"), bob.client.delete(path)]
    assert [(r.status_code, r.json()["code"]) for r in answers] == [(403, "auth.forbidden")] * 6
    assert list(McpServer.objects.values_list("name", flat=True)) == ["calc"]


def test_another_orgs_servers_are_404_and_never_listed(alice, charlie):
    server = register(alice, "https://tools.example.com/mcp")
    path = f"/v1/mcp-servers/{server['id']}"
    answers = [charlie.client.get(path), charlie.client.get(f"{path}/tools"),
               charlie.client.patch(path, {"timeout_seconds": 9}, format="json"), charlie.client.delete(path)]
    assert [(r.status_code, r.json()["code"]) for r in answers] == [(404, "mcp_servers.not_found")] * 4
    assert charlie.client.get("/v1/mcp-servers").json() == []
    assert charlie.client.get(f"/v1/mcp-servers?before={server['id']}").status_code == 422
    assert McpServer.objects.get().timeout_seconds == 30


@pytest.mark.parametrize("server_id", ["nope", "123", "00000000-0000-0000-0000-000000000000"])
def test_unknown_ids_are_404(alice, server_id):
    assert alice.client.get(f"/v1/mcp-servers/{server_id}").status_code == 404
    assert alice.client.get(f"/v1/mcp-servers/{server_id}/tools").status_code == 404


# --- GET /v1/mcp-servers/{id}/tools: asked of the server itself -------------------------------------


def test_tools_are_listed_from_the_server(alice, mcp_server):
    server = register(alice, mcp_server.url)
    response = alice.client.get(f"/v1/mcp-servers/{server['id']}/tools")
    assert response.status_code == 200, response.content
    tools = {tool["name"]: tool for tool in response.json()}
    assert {"add", "write_note", "sleep", "fail", "odd_text"} <= set(tools)
    assert all(set(tool) == {"name", "description", "input_schema", "read_only"} for tool in tools.values())
    assert tools["add"]["read_only"] is True and tools["write_note"]["read_only"] is False
    assert tools["add"]["description"] == "Add two numbers."
    assert tools["add"]["input_schema"]["type"] == "object"
    assert set(tools["add"]["input_schema"]["properties"]) == {"a", "b"}


def test_tools_of_a_stateless_json_server_are_listed_too(alice):
    with McpServerProcess(stateless=True) as stateless:
        server = register(alice, stateless.url)
        response = alice.client.get(f"/v1/mcp-servers/{server['id']}/tools")
    assert response.status_code == 200 and "add" in {tool["name"] for tool in response.json()}


def test_tools_of_an_unreachable_server_are_502_mcp_unavailable(alice):
    server = register(alice, closed_url(), timeout_seconds=5)
    response = alice.client.get(f"/v1/mcp-servers/{server['id']}/tools")
    assert response.status_code == 502 and response.json()["code"] == "mcp.unavailable"
    assert "calc" in response.json()["message"]


def test_tools_of_a_server_that_does_not_answer_in_time_are_502(alice):
    with silent_url() as stalled:
        server = register(alice, stalled.url, timeout_seconds=1)
        response = alice.client.get(f"/v1/mcp-servers/{server['id']}/tools")
    assert response.status_code == 502 and response.json()["code"] == "mcp.unavailable"
    assert "within 1 s" in response.json()["message"]


def test_headers_are_sent_to_the_server(alice, mcp_server):
    """The test server refuses requests without its token: listing works only with the header."""
    without = register(alice, mcp_server.url, name="without", headers={})
    wrong = register(alice, mcp_server.url, name="wrong", headers={"Authorization": "Bearer nope"})
    right = register(alice, mcp_server.url, name="right")
    statuses = [alice.client.get(f"/v1/mcp-servers/{s['id']}/tools").status_code for s in (without, wrong, right)]
    assert statuses == [502, 502, 200]


def test_a_server_refused_by_the_address_rule_at_connection_time_is_502(alice, mcp_server, settings):
    server = register(alice, mcp_server.url)
    settings.ARKLOOP_ALLOW_PRIVATE_URLS = False  # e.g. the rule was tightened after the server was stored
    response = alice.client.get(f"/v1/mcp-servers/{server['id']}/tools")
    assert response.status_code == 502 and "refused" in response.json()["message"]
    assert mcp_server.url not in json.dumps(response.json())


def test_headers_that_cannot_be_decrypted_make_the_server_unavailable(alice, mcp_server, settings):
    server = register(alice, mcp_server.url)
    settings.ARKLOOP_ENCRYPTION_KEY = "a-key-that-did-not-encrypt-them"
    response = alice.client.get(f"/v1/mcp-servers/{server['id']}/tools")
    assert response.status_code == 502 and "cannot be decrypted" in response.json()["message"]
