"""Sync views served in one hop to a thread pool (arkloop.serving) answer as Django's handler does.

In-process ASGI calls on the committed test database (the pool's threads have connections of
their own), each request sent both through `SyncViewsInThreads` and through Django's own ASGI
handler, answers compared.
"""
from __future__ import annotations

import asyncio
import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler

from arkloop import serving
from arkloop.serving import SyncViewsInThreads, check_django_handlers
from tests.conftest import make_actor

# Headers whose values differ from one answer to the next whoever serves it.
VARYING = {b"x-trace-id", b"set-cookie"}


def scope(method: str, path: str, headers: dict[str, str], body: bytes) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
            "headers": [(k.lower().encode(), v.encode()) for k, v in
                        {**headers, "content-length": str(len(body))}.items()]}


def call(app, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b"") -> dict:
    """Status, headers and body of one request to the ASGI `app`."""
    sent: list[dict] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        if pending:
            return pending.pop()
        await asyncio.Event().wait()  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope(method, path, headers or {}, body), receive, send), 20))
    start = sent[0]
    return {"status": start["status"], "headers": dict(start["headers"]),
            "body": b"".join(m.get("body", b"") for m in sent[1:])}


@pytest.fixture
def apps():
    django_app = ASGIHandler()
    pooled = SyncViewsInThreads(django_app, threads=2)
    yield pooled, django_app
    pooled.executor.shutdown()


@pytest.fixture
def alice_tx(transactional_db):
    return make_actor(org="acme", email="alice@acme.test", role="admin")


def comparable(answer: dict) -> tuple:
    headers = {name.lower(): value for name, value in answer["headers"].items()}
    return answer["status"], {name: value for name, value in headers.items() if name not in VARYING}


REQUESTS = [
    ("GET", "/v1/threads", None),
    ("POST", "/v1/threads", b'{"title": "pooled"}'),
    ("POST", "/v1/threads", b'{"title": 7}'),
    ("POST", "/v1/threads", b'{"title": '),
    ("GET", "/v1/threads/00000000-0000-0000-0000-000000000000", None),
    ("GET", "/v1/no-such-endpoint", None),
    ("GET", "/v1/threads?limit=%00", None),
    ("GET", "/admin/login/", None),
]


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
def test_the_pool_answers_what_djangos_handler_answers(apps, alice_tx, method, path, body):
    headers = {**alice_tx.auth, "content-type": "application/json", "host": "127.0.0.1"}
    pooled, plain = (call(app, method, path, headers=headers, body=body or b"") for app in apps)
    assert comparable(pooled) == comparable(plain)
    if pooled["headers"].get(b"Content-Type", b"").startswith(b"application/json"):
        assert shape(json.loads(pooled["body"])) == shape(json.loads(plain["body"]))
    assert pooled["headers"][b"X-Trace-Id"]


def shape(data: object) -> object:
    """What must match: an object's keys and error code (ids and times differ), a list's type."""
    return (sorted(data), data.get("code")) if isinstance(data, dict) else type(data)


def test_an_answer_without_credentials_is_the_401_envelope(apps, transactional_db):
    answer = call(apps[0], "POST", "/v1/threads", headers={"content-type": "application/json"}, body=b"{}")
    assert answer["status"] == 401
    assert json.loads(answer["body"])["code"] == "auth.missing_token"


class Recorder:
    """An ASGI app standing for Django's handler: records what it is given, answers 204."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def __getattr__(self, name):  # read_body, create_request, send_response: never used by these tests
        raise AssertionError(f"the pool used Django's {name}")


def test_async_views_and_the_overflow_go_to_djangos_handler(transactional_db):
    recorder = Recorder()
    app = SyncViewsInThreads(recorder, threads=1)
    try:
        stream = "/v1/runs/00000000-0000-0000-0000-000000000000/events"
        assert call(app, "GET", stream)["status"] == 204
        app.busy = 1  # every pool thread is serving a request
        assert call(app, "GET", "/v1/threads")["status"] == 204
        assert recorder.paths == [stream, "/v1/threads"]
    finally:
        app.executor.shutdown()


def test_the_startup_check_passes_on_the_pinned_django_and_fails_loudly_otherwise(monkeypatch):
    check_django_handlers()
    used = dict(serving._USED)
    used[(ASGIHandler, "send_response")] = ["self", "response", "send", "extra"]
    monkeypatch.setattr(serving, "_USED", used)
    with pytest.raises(ImproperlyConfigured, match="send_response"):
        check_django_handlers()
