"""The outbound URL rule shared by webhooks and MCP servers (arkloop.outbound)."""
from __future__ import annotations

import asyncio
import http.server
import threading

import httpx
import pytest

from arkloop.outbound import OutboundRefused, PublicOnlyTransport, check_outbound_url


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


def _get(url: str) -> httpx.Response:
    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=PublicOnlyTransport(), follow_redirects=False) as client:
            return await client.get(url)
    return asyncio.run(fetch())


def test_transport_refuses_a_name_that_resolves_to_loopback(local_server: int) -> None:
    with pytest.raises(OutboundRefused):
        _get(f"http://localhost:{local_server}/")


def test_transport_connects_to_the_checked_address_keeping_the_host_header(settings, local_server: int) -> None:
    settings.ARKLOOP_ALLOW_PRIVATE_URLS = True
    response = _get(f"http://localhost:{local_server}/")
    assert response.status_code == 200
    assert response.text == f"localhost:{local_server}"
