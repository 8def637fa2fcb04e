"""Password logins (SPEC §2): an unknown email and a wrong password fail alike, and ten failures
for one email or from one client address within five minutes lock further attempts (429
`auth.throttled`) until the window has passed — across server processes, over real HTTP.

Client addresses are chosen by binding the client socket to 127.0.0.x (all of 127/8 is loopback).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.db.models import F

from arkloop.models import LoginAttempt
from arkloop.services import LOGIN_MAX_FAILURES, LOGIN_WINDOW
from tests.servers import DaphneServer

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def second_server(database_url):
    """Another Daphne process on the same database: the counts are shared, not per process."""
    with DaphneServer(database_url=database_url) as server:
        yield server


@pytest.fixture
def servers(live_server, second_server, transactional_db):
    return live_server, second_server


@pytest.fixture
def alice_can_log_in(alice):
    alice.user.set_password(PASSWORD)
    alice.user.save()
    return alice


def login(server, email: str, password: str, *, address: str) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, timeout=httpx.Timeout(60.0, connect=5.0)) as client:
        return client.post(f"{server.url}/v1/auth/token", json={"email": email, "password": password})


def fail_ten_times(servers, attempts: list[tuple[str, str]]) -> None:
    """LOGIN_MAX_FAILURES failed logins (email, address), alternating between the two servers."""
    assert len(attempts) == LOGIN_MAX_FAILURES
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda n: login(servers[n % 2], attempts[n][0], "wrong", address=attempts[n][1]),
                                range(len(attempts))))
    assert [a.status_code for a in answers] == [401] * LOGIN_MAX_FAILURES
    assert {a.json()["code"] for a in answers} == {"auth.invalid_token"}


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "auth.throttled"
    assert 0 < int(response.headers["Retry-After"]) <= LOGIN_WINDOW.total_seconds()


def test_ten_failures_for_one_email_lock_it_until_the_window_has_passed(servers, alice_can_log_in, bob):
    fail_ten_times(servers, [("alice@acme.test", f"127.0.0.{10 + n}") for n in range(LOGIN_MAX_FAILURES)])
    for server in servers:  # even with the right password, from a fresh address, on either server
        assert_throttled(login(server, "ALICE@acme.test", PASSWORD, address="127.0.0.30"))
    bob.user.set_password(PASSWORD)
    bob.user.save()
    assert login(servers[0], "bob@acme.test", PASSWORD, address="127.0.0.30").status_code == 200

    LoginAttempt.objects.update(created_at=F("created_at") - LOGIN_WINDOW - timedelta(seconds=1))
    assert login(servers[1], "alice@acme.test", PASSWORD, address="127.0.0.30").status_code == 200


def test_ten_failures_from_one_address_lock_it_for_every_email(servers, alice_can_log_in):
    fail_ten_times(servers, [(f"nobody{n}@acme.test", "127.0.0.40") for n in range(LOGIN_MAX_FAILURES)])
    assert_throttled(login(servers[1], "alice@acme.test", PASSWORD, address="127.0.0.40"))
    assert login(servers[1], "alice@acme.test", PASSWORD, address="127.0.0.41").status_code == 200
    # neither the throttled attempt nor the successful one counts as a failure
    assert set(LoginAttempt.objects.values_list("address", flat=True)) == {"127.0.0.40"}
    assert LoginAttempt.objects.count() == LOGIN_MAX_FAILURES


class CountingHasher(MD5PasswordHasher):
    """A fast hasher that counts how often a password was hashed or checked."""

    algorithm = "counting_md5"
    calls = 0

    def encode(self, password, salt):
        CountingHasher.calls += 1
        return super().encode(password, salt).replace("md5", self.algorithm, 1)

    def verify(self, password, encoded):
        CountingHasher.calls += 1
        return super().verify(password, encoded.replace(self.algorithm, "md5", 1))


@pytest.mark.parametrize("email", ["alice@acme.test", "nobody@acme.test"])
def test_the_password_hasher_runs_once_for_a_wrong_password_and_an_unknown_email(alice, anonymous, settings, email):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    alice.user.set_password(PASSWORD)
    alice.user.save()
    CountingHasher.calls = 0
    response = anonymous.post("/v1/auth/token", {"email": email, "password": "wrong"})
    assert response.status_code == 401 and response.json()["message"] == "wrong email or password"
    assert CountingHasher.calls == 1
