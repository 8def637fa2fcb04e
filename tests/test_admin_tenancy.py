"""The admin shows API keys by prefix only: never a hash, never a plaintext."""
import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.test", "pw-for-tests")
    client.force_login(user)
    return client


def test_api_key_pages_show_the_prefix_and_never_the_hash(staff_client, alice):
    key = alice.membership.api_keys.get()
    listing = staff_client.get("/admin/arkloop/apikey/").content.decode()
    page = staff_client.get(f"/admin/arkloop/apikey/{key.pk}/change/").content.decode()
    for html in (listing, page):
        assert key.prefix in html
        assert key.key_hash not in html and alice.key not in html


def test_thread_page_shows_its_messages_inline(staff_client, alice):
    thread = alice.client.post("/v1/threads", {"title": "inline"}).json()
    alice.client.post(f"/v1/threads/{thread['id']}/messages", {"content": "visible in the admin"})
    page = staff_client.get(f"/admin/threads/thread/{thread['id']}/change/")
    assert page.status_code == 200
    assert "visible in the admin" in page.content.decode()


def test_org_and_membership_pages_render(staff_client, alice, bob):
    assert "acme" in staff_client.get("/admin/arkloop/org/").content.decode()
    assert "bob@acme.test" in staff_client.get("/admin/arkloop/membership/").content.decode()


def test_an_api_key_can_be_revoked_in_the_admin_but_never_un_revoked(staff_client, alice, anonymous):
    key = alice.membership.api_keys.get()
    staff_client.post("/admin/arkloop/apikey/", {"action": "revoke_selected_keys", "_selected_action": [str(key.pk)]})
    key.refresh_from_db()
    revoked_at = key.revoked_at
    assert revoked_at is not None
    assert anonymous.get("/v1/threads", HTTP_AUTHORIZATION=f"Bearer {alice.key}").status_code == 401

    page = staff_client.get(f"/admin/arkloop/apikey/{key.pk}/change/").content.decode()
    assert 'name="revoked_at' not in page
    staff_client.post(f"/admin/arkloop/apikey/{key.pk}/change/",
                      {"name": "renamed", "revoked_at_0": "", "revoked_at_1": "", "revoked_at": ""})
    key.refresh_from_db()
    assert key.name == "renamed" and key.revoked_at == revoked_at
