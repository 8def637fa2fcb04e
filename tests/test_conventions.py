"""Conventions of every /v1 endpoint (SPEC §1): envelope, trace ids, bad input never a 500."""
import json
import re
import subprocess
import sys

import pytest
from rest_framework.test import APIClient

from tests.servers import ROOT

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def post_raw(actor, path, body: bytes, content_type="application/json"):
    return actor.client.generic("POST", path, body, content_type=content_type)


def assert_envelope(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "details", "trace_id"}
    assert body["code"] == code
    assert HEX32.match(response["X-Trace-Id"]) and body["trace_id"] == response["X-Trace-Id"]
    return body


def test_every_response_has_a_fresh_trace_id(alice):
    first, second = alice.client.get("/v1/threads"), alice.client.get("/v1/threads")
    assert HEX32.match(first["X-Trace-Id"]) and HEX32.match(second["X-Trace-Id"])
    assert first["X-Trace-Id"] != second["X-Trace-Id"]


def test_unknown_path_is_the_404_envelope(alice):
    assert_envelope(alice.client.get("/v1/no/such/thing"), 404, "http.not_found")


@pytest.mark.parametrize("path", ["/v1/mcp-servers/a:b\n", "/v1/webhooks/x\ny/deliveries/0/redeliver",
                                  "/v1/threads/\n\t:x", "/v1/\r\n"])
def test_unknown_paths_with_control_characters_are_the_404_envelope_too(alice, settings, path):
    """Found by schemathesis (make soak): a newline in a path escaped the catch-all's `.*`, so
    Django answered with its HTML 404 page (under DEBUG, the technical one)."""
    settings.DEBUG = True
    response = alice.client.post(path) if "redeliver" in path else alice.client.get(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["code"].endswith("not_found")


def test_wrong_method_is_the_405_envelope(alice):
    assert_envelope(alice.client.put("/v1/threads", {}), 405, "http.method_not_allowed")


@pytest.mark.parametrize("body", [b"{", b"{'a': 1}", b"\xff\xfe", b"nan", b'{"title": "x"} trailing'])
def test_malformed_json_is_422(alice, body):
    assert_envelope(post_raw(alice, "/v1/threads", body), 422, "validation.error")


@pytest.mark.parametrize("body", [b"[]", b"[1, 2]", b'"text"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_422(alice, body):
    assert_envelope(post_raw(alice, "/v1/threads", body), 422, "validation.error")


@pytest.mark.parametrize("depth", [33, 5000, 200000])
def test_deeply_nested_json_is_422(alice, depth):
    body = ('{"title": ' + "[" * depth + "]" * depth + "}").encode()
    assert_envelope(post_raw(alice, "/v1/threads", body), 422, "validation.error")


def test_unknown_field_is_422_naming_it(alice):
    body = assert_envelope(alice.client.post("/v1/threads", {"title": "x", "colour": "red"}), 422, "validation.error")
    assert body["details"]["fields"] == {"colour": ["unknown field"]}


@pytest.mark.parametrize("title", [{"a": 1}, ["x"], "x" * 501])
def test_wrong_type_or_size_is_422_naming_the_field(alice, title):
    body = assert_envelope(alice.client.post("/v1/threads", {"title": title}), 422, "validation.error")
    assert "title" in body["details"]["fields"]


def test_form_encoded_body_is_refused_not_a_crash(alice):
    response = post_raw(alice, "/v1/threads", b"title=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code in (415, 422)
    assert response.json()["code"] == "validation.error"


@pytest.mark.parametrize("path", ["/v1/threads/not-a-uuid", "/v1/threads/123", "/v1/threads/%00"])
def test_non_uuid_ids_are_404(alice, path):
    assert_envelope(alice.client.get(path), 404, "threads.not_found")


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "1.5"])
def test_limit_outside_1_to_200_is_422(alice, limit):
    body = assert_envelope(alice.client.get(f"/v1/threads?limit={limit}"), 422, "validation.error")
    assert "limit" in body["details"]["fields"]


@pytest.mark.parametrize("limit", ["1", "200"])
def test_limit_bounds_are_accepted(alice, limit):
    assert alice.client.get(f"/v1/threads?limit={limit}").status_code == 200


@pytest.mark.urls("tests.crash_urls")
@pytest.mark.parametrize("path", ["/v1/_crash", "/v1/_plain_crash"])
def test_a_crash_is_the_500_envelope_without_internals(alice, path, caplog):
    alice.client.raise_request_exception = False
    response = alice.client.get(path)
    body = assert_envelope(response, 500, "internal.error")
    assert "boom" not in response.content.decode() and "Traceback" not in response.content.decode()
    assert body["message"] == "internal error"


def test_openapi_schema_and_offline_docs_page(anonymous, db):
    schema = anonymous.get("/v1/openapi.json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/v1/threads" in paths and "/v1/api-keys" in paths
    docs = anonymous.get("/v1/docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html.lower()
    assert not re.search(r"""(src|href)=["']https?://""", html), "the docs page must not load assets from a CDN"


def test_debug_off_refuses_the_development_secret_key():
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "false", "DJANGO_SETTINGS_MODULE": "arkloop.settings"}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.parametrize("title", [0, 1.5, True, None])
def test_values_of_the_wrong_json_type_are_422_not_coerced(alice, title):
    body = assert_envelope(alice.client.post("/v1/threads", {"title": title}), 422, "validation.error")
    assert "title" in body["details"]["fields"]


@pytest.mark.parametrize("method", ["post", "delete", "patch"])
def test_writes_to_an_unknown_path_are_a_json_404_not_a_csrf_403(alice, method):
    client = APIClient(enforce_csrf_checks=True)
    response = getattr(client, method)("/v1/threads/x/y/z", {"content": "x"}, HTTP_AUTHORIZATION=f"Bearer {alice.key}")
    assert_envelope(response, 404, "http.not_found")
