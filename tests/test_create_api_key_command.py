"""`manage.py create_api_key`: creates what is missing, prints the key alone on its last line."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from arkloop.authentication import hash_api_key
from arkloop.models import ApiKey, Membership, Org


def create_key(**options) -> str:
    out, err = StringIO(), StringIO()
    call_command("create_api_key", stdout=out, stderr=err, **options)
    return out.getvalue()


def test_creates_org_user_membership_and_prints_the_key_last(db):
    output = create_key(org="initech", email="peter@initech.test", role="admin", name="laptop")
    key = output.strip().splitlines()[-1]
    assert key.startswith("ak-") and len(key) == 67
    stored = ApiKey.objects.get(key_hash=hash_api_key(key))
    assert stored.name == "laptop"
    assert stored.membership.role == "admin" and stored.membership.org.slug == "initech"
    assert stored.membership.user.email == "peter@initech.test"


def test_second_call_reuses_the_membership_and_makes_a_new_key(db):
    first = create_key(org="initech", email="peter@initech.test").strip().splitlines()[-1]
    second = create_key(org="initech", email="peter@initech.test").strip().splitlines()[-1]
    assert first != second
    assert Org.objects.filter(slug="initech").count() == 1
    assert Membership.objects.get().api_keys.count() == 2


def test_key_made_by_the_command_works_over_the_api(db, anonymous):
    key = create_key(org="initech", email="peter@initech.test").strip().splitlines()[-1]
    assert anonymous.get("/v1/threads", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200


@pytest.mark.parametrize("options", [{"org": "Not A Slug!", "email": "a@b.test"},
                                     {"org": "ok", "email": "not-an-email"}])
def test_bad_arguments_are_clear_errors(db, options):
    with pytest.raises(CommandError):
        create_key(**options)
    assert not ApiKey.objects.exists()
