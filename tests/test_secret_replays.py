"""A stored Idempotency-Key answer never holds a secret (SPEC §1), over real HTTP to Daphne.

The first answer shows the secret once; the stored copy and every replay have that field null.
"""
from __future__ import annotations

import json

import httpx
import pytest

from arkloop.models import IdempotencyRecord

TIMEOUT = httpx.Timeout(20.0, connect=5.0)


@pytest.fixture
def api(live_server, transactional_db):
    with httpx.Client(base_url=f"{live_server.url}/v1", timeout=TIMEOUT) as client:
        yield client


def stored_body(key: str) -> bytes:
    return bytes(IdempotencyRecord.objects.get(key=key).response_body)


def test_an_api_key_replay_has_the_key_null_and_the_plaintext_is_never_stored(api, alice):
    headers = {**alice.auth, "Idempotency-Key": "new-key-1"}
    first = api.post("/api-keys", json={"name": "ci"}, headers=headers)
    assert first.status_code == 201
    plaintext = first.json()["key"]
    assert plaintext.startswith("ak-")

    assert plaintext.encode() not in stored_body("new-key-1")
    assert json.loads(stored_body("new-key-1"))["key"] is None

    again = api.post("/api-keys", json={"name": "ci"}, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == {**first.json(), "key": None}
    assert api.get("/threads", headers={"Authorization": f"Bearer {plaintext}"}).status_code == 200


def test_an_access_token_replay_has_the_token_null(api, alice):
    alice.user.set_password("correct horse battery")
    alice.user.save()
    headers = {**alice.auth, "Idempotency-Key": "login-1"}
    body = {"email": "alice@acme.test", "password": "correct horse battery"}
    first = api.post("/auth/token", json=body, headers=headers)
    assert first.status_code == 200
    token = first.json()["access_token"]

    assert token.encode() not in stored_body("login-1")
    again = api.post("/auth/token", json=body, headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == {**first.json(), "access_token": None}


def test_answers_without_a_secret_are_stored_whole(api, alice):
    headers = {**alice.auth, "Idempotency-Key": "bad-name"}
    first = api.post("/api-keys", json={"name": 7}, headers=headers)
    assert first.status_code == 422
    assert json.loads(stored_body("bad-name")) == first.json()
