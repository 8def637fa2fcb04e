"""Text and numbers no field can hold are a 422 naming the field, over real HTTP to Daphne (SPEC §1).

A NUL or a lone surrogate (sent as the JSON escape `"\\ud800"`) in any client text field, a number
beyond what any field holds, NUL in a query parameter: 422 `validation.error` naming the field,
and nothing is written — never a 500.
"""
from __future__ import annotations

import httpx
import pytest

from threads.models import Message, Thread

TIMEOUT = httpx.Timeout(20.0, connect=5.0)
BAD_TEXT = [r"\ud800", r"a\udfffb", r"\u0000", r"x\u0000"]


@pytest.fixture
def api(live_server, alice, transactional_db):
    with httpx.Client(base_url=f"{live_server.url}/v1", headers=alice.auth, timeout=TIMEOUT) as client:
        yield client


def post_raw(api: httpx.Client, path: str, body: str) -> httpx.Response:
    """`body` is JSON text as written, escapes included (a client library would refuse to encode them)."""
    return api.post(path, content=body.encode(), headers={"Content-Type": "application/json"})


def assert_field_error(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation.error" and list(body["details"]["fields"]) == [field]
    assert body["trace_id"] == response.headers["X-Trace-Id"]


@pytest.fixture
def thread_id(api) -> str:
    return api.post("/threads", json={"title": "t"}).json()["id"]


@pytest.mark.parametrize("text", BAD_TEXT)
def test_bad_text_in_message_content_is_422_and_nothing_is_written(api, thread_id, text):
    assert_field_error(post_raw(api, f"/threads/{thread_id}/messages", f'{{"content": "{text}"}}'), "content")
    assert not Message.objects.exists()


@pytest.mark.parametrize("text", BAD_TEXT)
def test_bad_text_in_run_input_is_422(api, thread_id, text):
    api.post(f"/threads/{thread_id}/messages", json={"content": "hello"})
    run_id = api.post(f"/threads/{thread_id}/runs", json={}).json()["run_id"]
    assert_field_error(post_raw(api, f"/runs/{run_id}/input", f'{{"content": "{text}"}}'), "content")


@pytest.mark.parametrize(("path", "field"), [("/threads", "title"), ("/api-keys", "name")])
def test_bad_text_in_other_fields_is_422_naming_them(api, path, field):
    assert_field_error(post_raw(api, path, f'{{"{field}": "ok\\ud800"}}'), field)


def test_a_field_whose_name_is_bad_text_is_422_not_a_crash(api):
    response = post_raw(api, "/threads", r'{"ti\ud800tle": "x"}')
    assert_field_error(response, "ti\ufffdtle")
    assert not Thread.objects.exists()


@pytest.mark.parametrize("number", ["1e400", "-1e400", str(2**63), str(-2**63 - 1), "9" * 4000])
def test_numbers_no_field_can_hold_are_422(api, number):
    assert_field_error(post_raw(api, "/threads", f'{{"title": {number}}}'), "title")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(api, literal):
    response = post_raw(api, "/threads", f'{{"title": {literal}}}')
    assert response.status_code == 422 and "body" in response.json()["details"]["fields"]


@pytest.mark.parametrize("query", ["model=%00", "persona_id=a%00b", "status=running&thread_id=%00"])
def test_nul_in_a_query_parameter_is_422_naming_it(api, query):
    response = api.get(f"/runs?{query}")
    assert_field_error(response, query.rsplit("&", 1)[-1].split("=")[0])
