"""Route credentials: Fernet at rest, env-var indirection, rotation, and no secret in repr or logs."""
import logging

import pytest
from cryptography.fernet import Fernet

from personas.credentials import CredentialsUnreadable, route_api_key
from personas.services import route_set_api_key
from tests.personas.helpers import make_route

SECRET = "sk-ant-credential-test-9f8e7d6c"


@pytest.fixture
def route(db):
    return make_route(route_id="paid", provider="anthropic", model="claude-test")


def test_a_stored_key_is_encrypted_and_reads_back(route):
    route_set_api_key(route=route, plaintext=SECRET)
    route.refresh_from_db()
    assert route.api_key_encrypted and SECRET not in route.api_key_encrypted
    assert route.credential_source == "encrypted"
    assert route_api_key(route) == SECRET


def test_removing_the_key_leaves_no_credentials(route):
    route_set_api_key(route=route, plaintext=SECRET)
    route_set_api_key(route=route, plaintext=None)
    route.refresh_from_db()
    assert route.api_key_encrypted == "" and route_api_key(route) is None and route.credential_source == "none"


def test_an_env_var_route_reads_the_variable_at_use_time(route, monkeypatch):
    route.api_key_env = "ARKLOOP_ROUTE_TEST_PROVIDER_KEY"
    monkeypatch.delenv("ARKLOOP_ROUTE_TEST_PROVIDER_KEY", raising=False)
    assert route_api_key(route) is None and route.credential_source == "env"
    monkeypatch.setenv("ARKLOOP_ROUTE_TEST_PROVIDER_KEY", SECRET)
    assert route_api_key(route) == SECRET


def test_a_stored_key_wins_over_the_env_var(route, monkeypatch):
    monkeypatch.setenv("ARKLOOP_ROUTE_TEST_PROVIDER_KEY", "from-env")
    route.api_key_env = "ARKLOOP_ROUTE_TEST_PROVIDER_KEY"
    route_set_api_key(route=route, plaintext=SECRET)
    assert route_api_key(route) == SECRET


def test_keys_can_be_rotated_by_prepending_a_new_encryption_key(route, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ARKLOOP_ENCRYPTION_KEY = old
    route_set_api_key(route=route, plaintext=SECRET)
    settings.ARKLOOP_ENCRYPTION_KEY = f"{new},{old}"
    assert route_api_key(route) == SECRET
    settings.ARKLOOP_ENCRYPTION_KEY = new
    with pytest.raises(CredentialsUnreadable) as excinfo:
        route_api_key(route)
    assert SECRET not in str(excinfo.value) and route.api_key_encrypted not in str(excinfo.value)


def test_the_derived_key_depends_on_secret_key(route, settings):
    settings.ARKLOOP_ENCRYPTION_KEY = ""
    route_set_api_key(route=route, plaintext=SECRET)
    settings.SECRET_KEY = "another-secret-key"
    with pytest.raises(CredentialsUnreadable):
        route_api_key(route)


def test_repr_and_str_of_a_route_hold_no_secret(route):
    route_set_api_key(route=route, plaintext=SECRET)
    for text in (repr(route), str(route), str(route.__dict__.get("id"))):
        assert SECRET not in text and route.api_key_encrypted not in text
    assert repr(route) == "<Route paid anthropic:claude-test>"


def test_setting_a_key_logs_that_it_changed_but_not_the_key(route, caplog):
    with caplog.at_level(logging.DEBUG):
        route_set_api_key(route=route, plaintext=SECRET)
    assert "route paid: stored API key replaced" in caplog.text
    assert SECRET not in caplog.text and route.api_key_encrypted not in caplog.text


@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL", "ARKLOOP_ENCRYPTION_KEY", "ARKLOOP_ROUTE_",
                                  "arkloop_route_x"])
def test_a_variable_outside_arkloop_route_is_never_read(route, monkeypatch, name):
    """Also for a route stored before the rule: the key is refused where it is read."""
    monkeypatch.setenv(name, SECRET)
    route.api_key_env = name
    with pytest.raises(CredentialsUnreadable, match="ARKLOOP_ROUTE_") as excinfo:
        route_api_key(route)
    assert SECRET not in str(excinfo.value) and name not in str(excinfo.value).replace("ARKLOOP_ROUTE_", "")
