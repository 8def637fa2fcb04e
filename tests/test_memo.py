"""Per-process memos (arkloop.memo): API-key principals, the personas and routes runs resolve.

The bound each promises: a change made in this process is seen at once; a change made where no
signal reaches this process (another process, an UPDATE by hand — here a queryset `update()`)
is seen once the memo's seconds have passed, never later.
"""
from __future__ import annotations

import pytest
from django.utils import timezone

from arkloop import memo
from arkloop.memo import Memo
from arkloop.models import ApiKey, Membership, Org, User
from personas.models import Persona, Route
from tests.runs.stories import thread_with_question


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(memo.time, "monotonic", clock)
    return clock


def counting_loader(values: list):
    calls = []

    def load():
        calls.append(1)
        return values[len(calls) - 1]

    return load, calls


def test_an_answer_is_kept_for_its_seconds_then_asked_again(clock):
    kept = Memo("test", seconds=lambda: 5)
    load, calls = counting_loader(["a", "b"])
    assert kept.get("k", load) == "a"
    clock.now += 4.9
    assert kept.get("k", load) == "a" and len(calls) == 1
    clock.now += 0.2
    assert kept.get("k", load) == "b" and len(calls) == 2


def test_forget_drops_every_answer_and_zero_seconds_keeps_none(clock, db):
    kept = Memo("test", seconds=lambda: 5)
    load, calls = counting_loader(["a", "b"])
    kept.get("k", load)
    kept.forget()
    assert kept.get("k", load) == "b"
    never = Memo("test", seconds=lambda: 0)
    load, calls = counting_loader(["x", "y"])
    assert [never.get("k", load), never.get("k", load)] == ["x", "y"]


def test_a_lookup_in_flight_when_a_change_is_announced_is_not_kept(clock, db):
    kept = Memo("test", seconds=lambda: 5)

    def load_while_changed():
        kept.forget()  # a revocation commits while this lookup reads the old row
        return "stale"

    assert kept.get("k", load_while_changed) == "stale"
    assert kept.get("k", lambda: "fresh") == "fresh"


def test_failures_are_not_kept_and_a_flood_of_keys_starts_over(clock):
    kept = Memo("test", seconds=lambda: 5, max_entries=3)

    def fail():
        raise LookupError

    with pytest.raises(LookupError):
        kept.get("k", fail)
    assert kept.get("k", lambda: "ok") == "ok"
    for key in range(5):
        kept.get(key, lambda: "v")
    assert len(kept._entries) <= 3


def status(actor) -> int:
    return actor.client.get("/v1/threads").status_code


def test_a_key_revoked_elsewhere_stops_working_within_the_auth_cache_seconds(alice, clock, settings):
    settings.ARKLOOP_AUTH_CACHE_SECONDS = 5
    assert status(alice) == 200
    ApiKey.objects.filter(membership=alice.membership).update(revoked_at=timezone.now())  # no signal here
    assert status(alice) == 200  # remembered
    clock.now += 5.1
    assert status(alice) == 401


@pytest.mark.parametrize("change", ["revoke", "deactivate", "demote"])
def test_a_change_made_in_this_process_is_seen_at_once(alice, clock, change):
    assert alice.client.get("/v1/api-keys").status_code == 200
    if change == "revoke":
        from arkloop.services import api_key_revoke

        api_key_revoke(key=alice.membership.api_keys.get())
    elif change == "deactivate":
        alice.user.is_active = False
        alice.user.save()
    else:
        alice.membership.role = "member"
        alice.membership.save()
    answer = alice.client.get("/v1/threads")
    assert answer.status_code == (200 if change == "demote" else 401)
    if change == "demote":  # the principal is a member now: another member's thread is invisible
        assert alice.client.get("/v1/threads").json() == []


def test_a_key_revoked_through_the_api_stops_working_at_once(alice, anonymous):
    key_id = alice.client.get("/v1/api-keys").json()[0]["id"]
    assert alice.client.delete(f"/v1/api-keys/{key_id}").status_code == 204
    assert status(alice) == 401


def test_a_persona_changed_elsewhere_is_seen_within_the_persona_cache_seconds(alice, clock, settings):
    settings.ARKLOOP_PERSONA_CACHE_SECONDS = 5
    body = {"persona_id": "careful"}
    assert alice.client.post(f"/v1/threads/{thread_with_question(alice)}/runs", body).status_code == 201
    Persona.objects.filter(key="careful").update(is_active=False)  # no signal
    assert alice.client.post(f"/v1/threads/{thread_with_question(alice)}/runs", body).status_code == 201
    clock.now += 5.1
    refused = alice.client.post(f"/v1/threads/{thread_with_question(alice)}/runs", body)
    assert refused.status_code == 422 and "persona_id" in refused.json()["details"]["fields"]


def test_a_route_saved_in_this_process_is_seen_at_once(alice, clock):
    Route.objects.create(id="spare", provider="stub", model="stub-spare")
    thread_id = thread_with_question(alice)
    assert alice.client.post(f"/v1/threads/{thread_id}/runs", {"route_id": "spare"}).status_code == 201
    route = Route.objects.get(pk="spare")
    route.is_active = False
    route.save()
    refused = alice.client.post(f"/v1/threads/{thread_with_question(alice)}/runs", {"route_id": "spare"})
    assert refused.status_code == 422 and "route_id" in refused.json()["details"]["fields"]


def memo_named(name: str) -> Memo:
    return next(kept for kept in memo._memos if kept.name == name)


# A row of each model whose memo is wired by its app's ready(); a fresh one where deleting a
# shared row would cascade to rows of another wired model (and forget for that model's sake).
ROWS = {
    "api key": (lambda alice: alice.membership.api_keys.get(), ["principals"]),
    "membership": (lambda alice: Membership.objects.create(org=alice.org, user=User.objects.create(username="m")),
                   ["principals"]),
    "org": (lambda alice: Org.objects.create(slug="initech"), ["principals"]),
    "user": (lambda alice: User.objects.create(username="u"), ["principals"]),
    "persona": (lambda alice: Persona.objects.get(key="careful"), ["personas", "routes"]),
    "route": (lambda alice: Route.objects.create(id="spare", provider="stub", model="stub-spare"),
              ["personas", "routes"]),
}


@pytest.mark.parametrize("row", ROWS)
def test_a_save_or_a_delete_in_this_process_forgets_the_memos_that_hold_the_row(alice, clock, settings, row):
    settings.ARKLOOP_AUTH_CACHE_SECONDS = settings.ARKLOOP_PERSONA_CACHE_SECONDS = 5
    make, names = ROWS[row]
    instance = make(alice)
    for change in (instance.save, instance.delete):
        memos = [memo_named(name) for name in names]
        assert [kept.get("probe", lambda: "old") for kept in memos] == ["old"] * len(memos)
        assert [kept.get("probe", lambda: "new") for kept in memos] == ["old"] * len(memos)  # kept
        change()
        assert [kept.get("probe", lambda: "new") for kept in memos] == ["new"] * len(memos), change.__name__
        memo.memos_forget_all()
