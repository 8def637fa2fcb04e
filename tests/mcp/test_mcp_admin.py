"""Admin pages of MCP servers: header values are write-only, the URL rule and name rules hold."""
from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from mcp_servers.headers import headers_open
from mcp_servers.models import McpServer
from tests.mcp.helpers import register

SECRET = "mcp-admin-page-secret-7731"


@pytest.fixture
def staff(db, client):
    user = get_user_model().objects.create_superuser("root", "root@example.test", "pw")
    client.force_login(user)
    return client


def server_form(org, **overrides) -> dict:
    form = {"org": str(org.pk), "name": "calc", "url": "https://tools.example.com/mcp", "allowed_tools": "null",
            "require_approval": "unless_read_only", "timeout_seconds": "30", "headers": ""}
    return {**form, **overrides}


def test_headers_typed_in_the_admin_are_stored_encrypted_and_never_rendered(staff, alice):
    headers = json.dumps({"Authorization": f"Bearer {SECRET}"})
    response = staff.post("/admin/mcp_servers/mcpserver/add/", server_form(alice.org, headers=headers), follow=True)
    assert response.status_code == 200 and SECRET not in response.content.decode()
    server = McpServer.objects.get()
    assert server.header_names == ["Authorization"] and headers_open(server.headers_encrypted) == json.loads(headers)
    pages = [f"/admin/mcp_servers/mcpserver/{server.pk}/change/", "/admin/mcp_servers/mcpserver/",
             "/admin/mcp_servers/mcpserver/?q=calc", f"/admin/mcp_servers/mcpserver/{server.pk}/history/"]
    for page in pages:
        html = staff.get(page).content.decode()
        assert "Authorization" in html or "history" in page
        assert SECRET not in html and server.headers_encrypted not in html


def test_saving_without_headers_keeps_them_and_clearing_removes_them(staff, alice):
    server = McpServer.objects.get(pk=register(alice, "https://tools.example.com/mcp")["id"])
    change = f"/admin/mcp_servers/mcpserver/{server.pk}/change/"
    staff.post(change, server_form(alice.org, timeout_seconds="12"))
    server.refresh_from_db()
    assert server.timeout_seconds == 12 and server.header_names == ["Authorization"] and server.headers_encrypted
    staff.post(change, server_form(alice.org, clear_headers="on"))
    server.refresh_from_db()
    assert server.header_names == [] and server.headers_encrypted == ""


@pytest.mark.parametrize("field,value", [("url", "http://10.0.0.1/mcp"), ("name", "Not Valid"),
                                         ("headers", "{not json"), ("headers", '{"Host": "x"}'),
                                         ("allowed_tools", '"add"'), ("timeout_seconds", "301")])
def test_the_admin_refuses_what_the_api_refuses(staff, alice, settings, field, value):
    settings.ARKLOOP_ALLOW_PRIVATE_URLS = False
    response = staff.post("/admin/mcp_servers/mcpserver/add/", server_form(alice.org, **{field: value}))
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert not McpServer.objects.exists()
