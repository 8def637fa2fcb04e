"""The outbound URL rule shared by webhooks and MCP servers (arkloop.outbound)."""
from __future__ import annotations

import asyncio
import http.server
import threading

import httpx
import httpx2
import pytest

from arkloop.outbound import OutboundRefused, PublicOnlyTransport, PublicOnlyTransport2, check_outbound_url


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://10.1.2.3/", "http://192.168.0.1/", "http://169.254.169.254/latest",
    "http://0.0.0.0/", "https://[::1]/", "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/",
    "http://localhost:8000/", "http://api.localhost/", "http://2130706433/",
])
def test_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused, match="loopback, private"):
        check_outbound_url(url)


@pytest.mark.parametrize("url", ["ftp://example.com/", "example.com/hook", "http:///path", "http://u:p@example.com/",
                                 "http://exa mple.com/", "https://example.com/" + "a" * 2048, "http://example.com:99999/"])
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused):
        check_outbound_url(url)


def test_public_and_unresolvable_names_are_accepted() -> None:
    assert check_outbound_url("https://8.8.8.8/hook") == "https://8.8.8.8/hook"
    # Does not resolve on this machine: accepted now, checked again at connection time.
    assert check_outbound_url("https://hooks.example.invalid/x") == "https://hooks.example.invalid/x"


def test_private_addresses_are_accepted_when_allowed(settings) -> None:
    settings.ARKLOOP_ALLOW_PRIVATE_URLS = True
    assert check_outbound_url("http://localhost:8000/hook") == "http://localhost:8000/hook"


class _EchoHost(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.headers["Host"].encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), _EchoHost)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


# The httpx transport (webhooks) and the httpx2 one (the MCP SDK's client) apply the same rule.
CLIENTS = [pytest.param((httpx, PublicOnlyTransport), id="httpx"),
           pytest.param((httpx2, PublicOnlyTransport2), id="httpx2")]


def _get(url: str, client: tuple) -> object:
    http, transport = client

    async def fetch() -> object:
        async with http.AsyncClient(transport=transport(), follow_redirects=False) as session:
            return await session.get(url)
    return asyncio.run(fetch())


@pytest.mark.parametrize("client", CLIENTS)
def test_transport_refuses_a_name_that_resolves_to_loopback(local_server: int, client: tuple) -> None:
    with pytest.raises(OutboundRefused):
        _get(f"http://localhost:{local_server}/", client)


@pytest.mark.parametrize("client", CLIENTS)
def test_transport_connects_to_the_checked_address_keeping_the_host_header(settings, local_server: int,
                                                                           client: tuple) -> None:
    settings.ARKLOOP_ALLOW_PRIVATE_URLS = True
    response = _get(f"http://localhost:{local_server}/", client)
    assert response.status_code == 200
    assert response.text == f"localhost:{local_server}"


@pytest.mark.parametrize("client", CLIENTS)
def test_transport_reports_an_unresolvable_name_as_its_clients_connect_error(client: tuple) -> None:
    http, _ = client
    with pytest.raises(http.ConnectError):
        _get("http://nothing-here.invalid/", client)
