"""`/v1/api-keys` (SPEC §2): members manage their own keys, admins the org's; others get 404."""
from arkloop.models import ApiKey


def test_create_returns_the_plaintext_once(alice):
    response = alice.client.post("/v1/api-keys", {"name": "ci"})
    assert response.status_code == 201
    created = response.json()
    assert created["key"].startswith("ak-") and created["name"] == "ci"
    assert created["prefix"] == created["key"][:11]
    listed = alice.client.get("/v1/api-keys").json()
    assert {k["id"] for k in listed} >= {created["id"]}
    assert all("key" not in k and "key_hash" not in k for k in listed)


def test_the_new_key_authenticates(alice, anonymous):
    key = alice.client.post("/v1/api-keys", {"name": "ci"}).json()["key"]
    assert anonymous.get("/v1/threads", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200


def test_revoke_makes_the_key_stop_working(alice, anonymous):
    created = alice.client.post("/v1/api-keys", {"name": "tmp"}).json()
    assert alice.client.delete(f"/v1/api-keys/{created['id']}").status_code == 204
    response = anonymous.get("/v1/threads", HTTP_AUTHORIZATION=f"Bearer {created['key']}")
    assert response.status_code == 401 and response.json()["code"] == "auth.invalid_api_key"
    assert alice.client.delete(f"/v1/api-keys/{created['id']}").status_code == 204  # idempotent


def test_member_sees_own_keys_and_admin_sees_the_orgs(alice, bob):
    bobs = {k["id"] for k in bob.client.get("/v1/api-keys").json()}
    alices = {k["id"] for k in alice.client.get("/v1/api-keys").json()}
    assert bobs == {str(bob.membership.api_keys.get().id)}
    assert alices >= bobs | {str(alice.membership.api_keys.get().id)}


def test_member_cannot_revoke_a_colleagues_key(alice, bob):
    alices_key = alice.membership.api_keys.get()
    assert bob.client.delete(f"/v1/api-keys/{alices_key.id}").status_code == 404
    assert ApiKey.objects.get(pk=alices_key.pk).revoked_at is None


def test_charlie_gets_404_on_alices_key_and_nothing_changes(alice, charlie):
    alices_key = alice.membership.api_keys.get()
    response = charlie.client.delete(f"/v1/api-keys/{alices_key.id}")
    assert response.status_code == 404
    assert ApiKey.objects.get(pk=alices_key.pk).revoked_at is None
    assert alice.client.get("/v1/threads").status_code == 200
    assert str(alices_key.id) not in {k["id"] for k in charlie.client.get("/v1/api-keys").json()}


def test_malformed_key_id_is_404(alice):
    assert alice.client.delete("/v1/api-keys/not-a-uuid").status_code == 404


def test_using_a_key_records_when_it_was_last_used(alice):
    assert alice.membership.api_keys.get().last_used_at is None
    alice.client.get("/v1/threads")
    assert alice.membership.api_keys.get().last_used_at is not None
