"""GET /v1/routes (SPEC §5): usable routes, with prices as numbers and never a secret."""
import json

from personas.credentials import route_api_key
from personas.services import route_set_api_key
from tests.personas.helpers import make_route

SECRET = "sk-live-route-secret-0123456789"


def routes_by_id(actor) -> dict[str, dict]:
    response = actor.client.get("/v1/routes")
    assert response.status_code == 200, response.content
    return {r["route_id"]: r for r in response.json()}


def test_builtin_stub_route_is_listed_with_numeric_prices(bob):
    stub = routes_by_id(bob)["stub"]
    assert stub["id"] == "stub" and stub["provider"] == "stub" and stub["model"] == "stub-echo-1"
    assert stub["prices"] == {"input": 1.0, "cached_input": 0.1, "output": 2.0}
    assert stub["credentials"] == "none" and stub["fallback_route_id"] is None and stub["org_id"] is None
    assert stub["context_window"] == 128_000


def test_routes_are_by_priority_and_show_fallback_and_credential_kind(alice):
    make_route(route_id="env-route", priority=5, api_key_env="ARKLOOP_ROUTE_SOME_PROVIDER")
    make_route(route_id="primary", priority=10, fallback_id="env-route", price_cached_input="0.125")
    routes = alice.client.get("/v1/routes").json()
    assert [r["route_id"] for r in routes][:2] == ["primary", "env-route"]
    primary = routes[0]
    assert primary["fallback_route_id"] == "env-route" and primary["priority"] == 10
    assert primary["prices"] == {"input": 3.0, "cached_input": 0.125, "output": 15.0}
    assert routes[1]["credentials"] == "env"
    assert "ARKLOOP_ROUTE_SOME_PROVIDER" not in json.dumps(routes)


def test_route_secret_never_appears_in_the_api_output(alice):
    route = make_route(route_id="paid")
    route_set_api_key(route=route, plaintext=SECRET)
    route.refresh_from_db()
    assert route_api_key(route) == SECRET
    response = alice.client.get("/v1/routes")
    assert routes_by_id(alice)["paid"]["credentials"] == "encrypted"
    assert SECRET not in response.content.decode()
    assert route.api_key_encrypted not in response.content.decode()
    assert "api_key" not in response.content.decode()


def test_inactive_and_other_orgs_routes_are_absent(alice, charlie):
    make_route(route_id="retired", active=False)
    make_route(route_id="globex-private", org=charlie.org)
    make_route(route_id="acme-private", org=alice.org)
    assert {"stub", "acme-private"} <= set(routes_by_id(alice))
    assert not {"retired", "globex-private"} & set(routes_by_id(alice))
    assert "globex-private" in routes_by_id(charlie) and "acme-private" not in routes_by_id(charlie)


def test_charlie_gets_no_route_detail_and_nothing_changes(alice, charlie):
    route = make_route(route_id="acme-private", org=alice.org)
    response = charlie.client.get("/v1/routes/acme-private")
    assert response.status_code == 404
    route.refresh_from_db()
    assert route.is_active and "acme-private" in routes_by_id(alice)


def test_routes_list_honours_limit(alice):
    assert len(alice.client.get("/v1/routes?limit=1").json()) == 1
    assert alice.client.get("/v1/routes?limit=0").status_code == 422


def test_base_url_is_shown_to_org_admins_only(live_server, alice, bob):
    """Over real HTTP: a member sees the routes without base_url; an admin sees it."""
    import httpx

    make_route(route_id="hosted", base_url="http://inference.internal:8000/v1")
    admin_view, member_view = (httpx.get(f"{live_server.url}/v1/routes", headers=actor.auth, timeout=20).json()
                               for actor in (alice, bob))
    assert {r["route_id"]: r for r in admin_view}["hosted"]["base_url"] == "http://inference.internal:8000/v1"
    assert "hosted" in {r["route_id"] for r in member_view}
    assert all("base_url" not in route for route in member_view)
    assert "inference.internal" not in json.dumps(member_view)
