"""Threads and messages (SPEC §3), with the isolation matrix."""
import pytest

from threads.models import Message, Thread


def create_thread(actor, title="plans"):
    response = actor.client.post("/v1/threads", {"title": title})
    assert response.status_code == 201, response.content
    return response.json()


def test_create_thread_returns_the_thread_shape(alice):
    thread = create_thread(alice)
    assert set(thread) == {"id", "org_id", "title", "created_by_user_id", "created_at", "updated_at",
                           "active_run_id"}
    assert thread["org_id"] == str(alice.org.id)
    assert thread["created_by_user_id"] == str(alice.user.id)
    assert thread["active_run_id"] is None
    assert thread["created_at"].endswith("Z")


def test_thread_title_is_optional(alice):
    response = alice.client.post("/v1/threads", {})
    assert response.status_code == 201
    assert response.json()["title"] == ""


def test_thread_list_is_newest_first_and_paged_by_before(alice):
    ids = [create_thread(alice, f"t{i}")["id"] for i in range(5)]
    page = alice.client.get("/v1/threads?limit=2").json()
    assert [t["id"] for t in page] == ids[::-1][:2]
    rest = alice.client.get(f"/v1/threads?limit=10&before={page[-1]['id']}").json()
    assert [t["id"] for t in rest] == ids[::-1][2:]


def test_patch_changes_the_title(alice):
    thread = create_thread(alice)
    response = alice.client.patch(f"/v1/threads/{thread['id']}", {"title": "renamed"})
    assert response.status_code == 200
    assert response.json()["title"] == "renamed"


def test_delete_is_soft_and_hides_the_thread(alice):
    thread = create_thread(alice)
    assert alice.client.delete(f"/v1/threads/{thread['id']}").status_code == 204
    assert alice.client.get(f"/v1/threads/{thread['id']}").status_code == 404
    assert Thread.objects.get(pk=thread["id"]).deleted_at is not None


def test_messages_are_listed_oldest_first(alice):
    thread = create_thread(alice)
    for text in ["one", "two", "three"]:
        response = alice.client.post(f"/v1/threads/{thread['id']}/messages", {"content": text})
        assert response.status_code == 201
        assert response.json()["role"] == "user" and response.json()["run_id"] is None
    listed = alice.client.get(f"/v1/threads/{thread['id']}/messages").json()
    assert [m["content"] for m in listed] == ["one", "two", "three"]
    last_two = alice.client.get(f"/v1/threads/{thread['id']}/messages?limit=2").json()
    assert [m["content"] for m in last_two] == ["two", "three"]


@pytest.mark.parametrize("content", ["", "   \n\t", "é" * 16385])
def test_message_content_rules_count_utf8_bytes(alice, content):
    thread = create_thread(alice)
    response = alice.client.post(f"/v1/threads/{thread['id']}/messages", {"content": content})
    assert response.status_code == 422
    assert "content" in response.json()["details"]["fields"]


def test_message_of_exactly_32768_bytes_is_accepted(alice):
    thread = create_thread(alice)
    response = alice.client.post(f"/v1/threads/{thread['id']}/messages", {"content": "é" * 16384})
    assert response.status_code == 201


def test_bob_does_not_see_alices_threads_but_alice_sees_bobs(alice, bob):
    alices = create_thread(alice)
    bobs = create_thread(bob)
    assert [t["id"] for t in bob.client.get("/v1/threads").json()] == [bobs["id"]]
    assert bob.client.get(f"/v1/threads/{alices['id']}").status_code == 404
    assert {t["id"] for t in alice.client.get("/v1/threads").json()} == {alices["id"], bobs["id"]}


@pytest.mark.parametrize("method,suffix,body", [
    ("get", "", None),
    ("patch", "", {"title": "pwned"}),
    ("delete", "", None),
    ("get", "/messages", None),
    ("post", "/messages", {"content": "pwned"}),
])
def test_charlie_gets_404_on_every_thread_endpoint_and_nothing_changes(alice, charlie, method, suffix, body):
    thread = create_thread(alice, "secret")
    alice.client.post(f"/v1/threads/{thread['id']}/messages", {"content": "hi"})
    response = getattr(charlie.client, method)(f"/v1/threads/{thread['id']}{suffix}", body)
    assert response.status_code == 404
    assert response.json()["code"] == "threads.not_found"
    stored = Thread.objects.get(pk=thread["id"])
    assert (stored.title, stored.deleted_at) == ("secret", None)
    assert Message.objects.filter(thread_id=thread["id"]).count() == 1
    assert charlie.client.get("/v1/threads").json() == []


def test_patch_without_a_title_changes_nothing(alice):
    thread = create_thread(alice, "kept")
    response = alice.client.patch(f"/v1/threads/{thread['id']}", {})
    assert response.status_code == 200 and response.json()["title"] == "kept"


@pytest.mark.parametrize("before", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_a_before_cursor_naming_no_thread_is_422(alice, before):
    response = alice.client.get(f"/v1/threads?before={before}")
    assert response.status_code == 422
    assert "before" in response.json()["details"]["fields"]


def test_a_before_cursor_of_another_orgs_thread_is_422_like_any_unknown_id(alice, charlie):
    theirs = create_thread(charlie)
    assert alice.client.get(f"/v1/threads?before={theirs['id']}").status_code == 422
