"""Bearer authentication (SPEC §2): API keys, access tokens, and every way they fail."""
import pytest
from django.core import signing

from arkloop.authentication import ACCESS_TOKEN_SALT
from arkloop.models import Membership
from arkloop.services import api_key_create, api_key_revoke, membership_ensure
from tests.conftest import make_actor


def get_threads(client, **headers):
    return client.get("/v1/threads", **headers)


def assert_401(response, code):
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == code
    assert body["trace_id"] == response["X-Trace-Id"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_missing_token_is_401_missing_token(anonymous):
    assert_401(get_threads(anonymous), "auth.missing_token")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer a b", "Token abc"])
def test_malformed_authorization_is_401_invalid_token(anonymous, db, header):
    assert_401(get_threads(anonymous, HTTP_AUTHORIZATION=header), "auth.invalid_token")


@pytest.mark.parametrize("key", ["ak-123", "ak-" + "g" * 64, "ak-" + "0" * 64, "ak-" + "A" * 64])
def test_unknown_or_malformed_api_key_is_401_invalid_api_key(anonymous, db, key):
    assert_401(get_threads(anonymous, HTTP_AUTHORIZATION=f"Bearer {key}"), "auth.invalid_api_key")


def test_revoked_api_key_is_401_invalid_api_key(alice):
    assert get_threads(alice.client).status_code == 200
    api_key_revoke(key=alice.membership.api_keys.get())
    assert_401(get_threads(alice.client), "auth.invalid_api_key")


def test_key_of_an_inactive_user_is_refused(alice):
    alice.user.is_active = False
    alice.user.save()
    assert_401(get_threads(alice.client), "auth.invalid_api_key")


def test_only_the_hash_and_a_prefix_of_a_key_are_stored(alice):
    key = alice.membership.api_keys.get()
    assert alice.key.startswith("ak-") and len(alice.key) == 67
    assert key.prefix == alice.key[:11]
    assert alice.key not in {key.key_hash, key.prefix, key.name}


@pytest.fixture
def alice_with_password(alice):
    alice.user.set_password("correct horse battery")
    alice.user.save()
    return alice


def issue_token(client, **body):
    return client.post("/v1/auth/token", body)


def test_password_login_issues_a_bearer_access_token(alice_with_password, anonymous):
    response = issue_token(anonymous, email="alice@acme.test", password="correct horse battery")
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    listed = get_threads(anonymous, HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert listed.status_code == 200


def test_wrong_password_is_401(alice_with_password, anonymous):
    response = issue_token(anonymous, email="alice@acme.test", password="wrong")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_token"


def test_expired_access_token_is_401_token_expired(alice_with_password, anonymous, settings):
    token = issue_token(anonymous, email="alice@acme.test", password="correct horse battery").json()
    settings.ARKLOOP_ACCESS_TOKEN_TTL_SECONDS = -1
    assert_401(get_threads(anonymous, HTTP_AUTHORIZATION=f"Bearer {token['access_token']}"), "auth.token_expired")


def test_tampered_access_token_is_401_invalid_token(alice, anonymous):
    forged = signing.dumps({"m": str(alice.membership.pk)}, salt=ACCESS_TOKEN_SALT, key="not-our-secret")
    assert_401(get_threads(anonymous, HTTP_AUTHORIZATION=f"Bearer {forged}"), "auth.invalid_token")


def test_access_token_is_bound_to_the_named_org(alice_with_password, charlie, anonymous):
    membership_ensure(org_slug="globex", email="alice@acme.test", role="member")
    charlie.client.post("/v1/threads", {"title": "globex plans"})
    alice_with_password.client.post("/v1/threads", {"title": "acme plans"})
    ambiguous = issue_token(anonymous, email="alice@acme.test", password="correct horse battery")
    assert ambiguous.status_code == 401  # two orgs: the caller must name one
    token = issue_token(anonymous, email="alice@acme.test", password="correct horse battery", org="acme").json()
    titles = [t["title"] for t in get_threads(anonymous, HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").json()]
    assert titles == ["acme plans"]


def test_token_request_rejects_unknown_fields(anonymous, db):
    response = issue_token(anonymous, email="a@b.c", password="x", extra=1)
    assert response.status_code == 422
    assert "extra" in response.json()["details"]["fields"]


def test_a_key_acts_for_its_own_membership_only(db):
    acme = make_actor(org="acme", email="dana@acme.test", role="member")
    _, second_key = api_key_create(membership=Membership.objects.get(pk=acme.membership.pk), name="second")
    acme.client.post("/v1/threads", {"title": "dana's"})
    acme.client.credentials(HTTP_AUTHORIZATION=f"Bearer {second_key}")
    assert [t["title"] for t in acme.client.get("/v1/threads").json()] == ["dana's"]
