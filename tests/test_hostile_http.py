"""A hostile client over real HTTP to Daphne (SPEC §1): whatever the method, the headers or the
bytes of the request line, an error is the JSON envelope with its trace id — never an HTML page,
a bare status line or a 500 — and a method a route does not take changes nothing.

Each test here was a hole found by such a sweep (docs/api-edge.md, "Methods, headers and request
lines", lists them).
"""
from __future__ import annotations

import json
import re

import httpx
import pytest

from arkloop import daphne_errors
from tests.rawhttp import connect, exchange, request
from threads.models import Message

TIMEOUT = httpx.Timeout(20.0, connect=5.0)
HEX32 = re.compile(r"^[0-9a-f]{32}$")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def assert_envelope(status: int, headers, body: bytes, code: str | None = None) -> dict:
    assert headers["content-type"] == "application/json", (status, body[:300])
    data = json.loads(body)
    assert set(data) == {"code", "message", "details", "trace_id"}, data
    assert HEX32.match(headers["x-trace-id"]) and data["trace_id"] == headers["x-trace-id"]
    assert code is None or data["code"] == code, data
    return data


@pytest.fixture
def world(live_server, alice, transactional_db) -> dict:
    thread = alice.client.post("/v1/threads", {"title": "t"}).json()["id"]
    alice.client.post(f"/v1/threads/{thread}/messages", {"content": "hello"})
    run = alice.client.post(f"/v1/threads/{thread}/runs", {}).json()["run_id"]
    webhook = alice.client.post("/v1/webhooks", {"url": "https://example.com/hook"}).json()["id"]
    key = alice.client.get("/v1/api-keys").json()[0]["id"]
    return {"url": live_server.url, "auth": alice.auth, "thread": thread, "run": run, "webhook": webhook, "key": key}


def every_route(w: dict) -> list[str]:
    thread, run, webhook = w["thread"], w["run"], w["webhook"]
    delivery = "00000000-0000-0000-0000-000000000000"
    return ["/v1/threads", f"/v1/threads/{thread}", f"/v1/threads/{thread}/messages", f"/v1/threads/{thread}/runs",
            f"/v1/threads/{thread}:retry", f"/v1/threads/{thread}/retry", "/v1/runs", f"/v1/runs/{run}",
            f"/v1/runs/{run}:cancel", f"/v1/runs/{run}/cancel", f"/v1/runs/{run}/input", f"/v1/runs/{run}/events",
            "/v1/personas", "/v1/personas/default", "/v1/routes", "/v1/webhooks", f"/v1/webhooks/{webhook}",
            f"/v1/webhooks/{webhook}/rotate-secret", f"/v1/webhooks/{webhook}/deliveries",
            f"/v1/webhooks/{webhook}/deliveries/{delivery}:redeliver", "/v1/mcp-servers",
            f"/v1/mcp-servers/{delivery}", "/v1/api-keys", f"/v1/api-keys/{w['key']}", "/v1/auth/token",
            "/v1/openapi.json", "/v1/docs", "/v1/no/such/route"]


def test_methods_no_route_takes_get_the_envelope_on_every_route(world):
    """OPTIONS and HEAD too: the docs page answered OPTIONS with a 500 and other methods with an
    HTML 405; openapi.json its 405 as `application/vnd.oai.openapi+json`."""
    with httpx.Client(base_url=world["url"], headers=world["auth"], timeout=TIMEOUT) as client:
        for path in every_route(world):
            for method in ["OPTIONS", "HEAD", "PUT", "TRACE", "FROB"]:
                response = client.request(method, path)
                assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
                assert "x-trace-id" in response.headers, (method, path)
                if response.status_code >= 400 and method != "HEAD":
                    assert_envelope(response.status_code, response.headers, response.content)


def test_head_with_a_body_posts_no_message(world):
    """HEAD is answered by the GET handler: the messages route took every method but GET for a POST."""
    body = json.dumps({"content": "sent with HEAD"}).encode()
    raw = request("HEAD", f"/v1/threads/{world['thread']}/messages",
                  {**world["auth"], "Content-Type": "application/json", "Connection": "close"}, body)
    with connect(world["url"]) as sock:
        sock.sendall(raw)
        answer = b""
        while b"\r\n\r\n" not in answer and (data := sock.recv(65536)):
            answer += data
    assert answer.startswith(b"HTTP/1.1 200 "), answer  # the list's answer, without its body
    assert list(Message.objects.values_list("content", flat=True)) == ["hello"]


def test_an_accept_header_no_renderer_matches_still_gets_json(world):
    """DRF's content negotiation refused such an Accept with NotAcceptable: a 500 (`?format=xml`: a 404)."""
    for accept in [b"text/html", b"application/xml;q=1, image/*", b"\xe9/\xe9"]:
        headers = {**world["auth"], "Accept": accept}
        for method, path, status in [("GET", "/v1/threads", 200), ("POST", "/v1/threads", 201),
                                     ("GET", "/v1/threads?format=xml", 200)]:
            response = httpx.request(method, world["url"] + path, headers=headers, timeout=TIMEOUT,
                                     json={"title": "x"} if method == "POST" else None)
            assert response.status_code == status, (accept, method, path, response.text[:300])
            assert response.headers["content-type"] == "application/json"


GET = b"GET /v1/threads HTTP/1.1\r\nHost: 127.0.0.1\r\n"
# The request head, and whether the refusal comes after the headers are read (it honours `traceparent`).
REFUSED_BEFORE_THE_APP = [
    pytest.param(b"GET /v1/threads HTTP/1.1\r\nHost: exa mple\r\n", True, id="host-django-refuses"),
    pytest.param(GET + b"X-Odd: a\x0bb\r\n", True, id="header-value-daphne-refuses"),
    pytest.param(GET + b"Last-Event-ID: \x00\r\n", False, id="nul-in-a-header"),
    pytest.param(GET + b"Bad Name: x\r\n", False, id="header-name-not-a-token"),
    pytest.param(b"GET /v1/threads/\xff HTTP/1.1\r\nHost: 127.0.0.1\r\n", False, id="path-byte-not-ascii"),
    pytest.param(b"GET /v1/runs?model=\xe9 HTTP/1.1\r\nHost: 127.0.0.1\r\n", False, id="query-byte-not-ascii"),
]


@pytest.mark.parametrize(("head", "after_headers"), REFUSED_BEFORE_THE_APP)
def test_requests_refused_before_the_api_runs_get_the_400_envelope(world, head, after_headers):
    """Django's bad-Host page and Daphne's pages were HTML; Twisted's 400 had no body and no trace id."""
    auth = f"Authorization: Bearer {world['auth']['Authorization'].split()[1]}\r\n".encode()
    traceparent = f"traceparent: 00-{TRACE_ID}-00f067aa0ba902b7-01\r\nConnection: close\r\n\r\n".encode()
    response = exchange(world["url"], head + auth + traceparent)
    assert response.status == 400
    assert_envelope(response.status, response.headers, response.body, "http.bad_request")
    assert (response.headers["x-trace-id"] == TRACE_ID) == after_headers


def test_a_multipart_post_twisted_cannot_parse_reaches_the_api(world):
    """Twisted parsed form bodies for resources Daphne never uses; one without a boundary was a bare 400."""
    raw = request("POST", "/v1/threads", {**world["auth"], "Content-Type": "multipart/form-data",
                                          "Connection": "close"}, b"not multipart")
    response = exchange(world["url"], raw)
    assert response.status == 415
    assert_envelope(response.status, response.headers, response.body, "validation.error")


def test_startup_check_refuses_daphne_code_it_was_not_written_for(monkeypatch):
    from daphne.http_protocol import WebRequest
    from twisted.web import http

    daphne_errors._check(WebRequest, http)  # the pinned Daphne and Twisted pass
    monkeypatch.setitem(daphne_errors._EXPECTED_SOURCES, "WebRequest.basic_error", "0" * 64)
    with pytest.raises(RuntimeError, match="WebRequest.basic_error"):
        daphne_errors._check(WebRequest, http)
