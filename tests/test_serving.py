"""Sync views served in one hop to a thread pool (arkloop.serving) answer as Django's handler does.

In-process ASGI calls on the committed test database (the pool's threads have connections of
their own), each request sent both through `SyncViewsInThreads` and through Django's own ASGI
handler, answers compared.
"""
from __future__ import annotations

import asyncio
import io
import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.core.handlers.base import BaseHandler
from django.urls import Resolver404, get_resolver, set_urlconf

from arkloop import resolving, serving
from arkloop.resolving import ResolvedOnce, scope_match
from arkloop.serving import SyncViewsInThreads, check_django_handlers
from runs.stream.selectors import stream_db
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


@pytest.fixture
def resolves(monkeypatch) -> list[str]:
    """The paths the URL map is asked to resolve, by anyone (the lean stream path, the pool,
    Django's handlers): a wrapper around the root resolver, which `resolve()` and Django's
    `resolve_request` both use."""
    resolver = get_resolver()
    paths: list[str] = []

    def counting(path: str):
        paths.append(path)
        return original(path)

    original = resolver.resolve
    monkeypatch.setattr(resolver, "resolve", counting)
    return paths


@pytest.fixture
def finished_run(alice_tx):
    from tests.stream.conftest import make_run

    run = make_run(alice_tx, events=1, finish="run.completed")
    yield run
    stream_db.close()  # the stream's DB threads keep connections open: close them for the database to go


STREAM = "/v1/runs/{run_id}/events"
ONCE = [  # through every path of the ASGI stack (arkloop/asgi.py): the pool, the lean stream path, Django's handler
    ("GET", "/v1/threads", None, 200),
    ("POST", "/v1/threads", b'{"title": "once"}', 201),
    ("GET", STREAM, None, 200),  # served by the lean path
    ("GET", STREAM.format(run_id="00000000-0000-0000-0000-000000000000"), None, 404),  # declined: Django's handler
    ("HEAD", STREAM, None, 405),  # not for the lean path: Django's handler answers
    ("GET", "/not-a-route", None, 404),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), ONCE)
@pytest.mark.parametrize("pool", ["free", "busy"])
def test_each_request_resolves_its_url_once(monkeypatch, resolves, alice_tx, finished_run, method, path, body,
                                             status, pool):
    from arkloop.asgi import application, django_app

    if pool == "busy":  # every pool thread is serving a request: the overflow goes to Django's handler
        monkeypatch.setattr(django_app, "busy", django_app.threads)
    path = path.format(run_id=finished_run.id)
    headers = {**alice_tx.auth, "content-type": "application/json", "host": "127.0.0.1"}
    assert call(application, method, path, headers=headers, body=body or b"")["status"] == status
    assert resolves == [path]


class _Handler(ResolvedOnce, BaseHandler):
    pass


def test_the_match_a_scope_carries_is_used_only_for_the_path_and_urlconf_django_would_resolve(resolves):
    handler = _Handler()
    carried, match = scope_match(scope("GET", "/v1/threads", {}, b""))
    assert handler.resolve_request(ASGIRequest(carried, io.BytesIO())) is match
    assert resolves == ["/v1/threads"]

    moved = ASGIRequest(carried, io.BytesIO())
    moved.path_info = "/v1/api-keys"  # as a middleware might: Django resolves what it would have
    assert handler.resolve_request(moved).url_name == "api-key-list"
    assert resolves == ["/v1/threads", "/v1/api-keys"]

    crash, catch_all = scope_match(scope("GET", "/v1/_crash", {}, b""))
    elsewhere = ASGIRequest(crash, io.BytesIO())
    elsewhere.urlconf = "tests.crash_urls"  # as a middleware might: resolved in that URLconf
    try:
        assert handler.resolve_request(elsewhere).route == "v1/_crash" != catch_all.route
    finally:
        set_urlconf(None)

    nowhere, match = scope_match(scope("GET", "/not-a-route", {}, b""))
    with pytest.raises(Resolver404):
        handler.resolve_request(ASGIRequest(nowhere, io.BytesIO()))
    assert match is None and resolves == ["/v1/threads", "/v1/api-keys", "/v1/_crash", "/not-a-route"]


def test_resolving_once_refuses_to_start_on_another_resolve_request(monkeypatch):
    resolving.check_resolve_request()
    monkeypatch.setattr(resolving, "_EXPECTED_SOURCES", {"BaseHandler.resolve_request": "0" * 64})
    with pytest.raises(RuntimeError, match="resolve_request"):
        resolving.get_asgi_application()
