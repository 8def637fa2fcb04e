"""GET /v1/personas and /v1/personas/{persona_id} (SPEC §5), with org isolation."""
import pytest

from tests.personas.helpers import make_persona


def persona_ids(actor) -> list[str]:
    response = actor.client.get("/v1/personas")
    assert response.status_code == 200, response.content
    return [p["persona_id"] for p in response.json()]


def test_list_shows_builtins_as_key_at_version(bob):
    personas = {p["persona_id"]: p for p in bob.client.get("/v1/personas").json()}
    assert {"default@1", "default@2", "careful@1"} <= set(personas)
    assert "mcp__*" in personas["default@2"]["tools"]
    careful = personas["careful@1"]
    assert careful["title"] and careful["description"]
    assert careful["tools"] == ["echo", "calculator", "current_time", "ask_user"]
    assert careful["confirm_tools"] == ["calculator"]
    assert careful["route_id"] == "stub"
    assert careful["builtin"] is True and careful["org_id"] is None and careful["version"] == 1
    assert "system_prompt" not in careful


def test_list_is_by_key_then_newest_version_and_hides_inactive_ones(alice):
    make_persona(key="writer", version=1)
    make_persona(key="writer", version=2)
    make_persona(key="writer", version=3, active=False)
    ids = persona_ids(alice)
    assert [i for i in ids if i.startswith("writer@")] == ["writer@2", "writer@1"]
    assert ids == sorted(ids, key=lambda i: (i.split("@")[0], -int(i.split("@")[1])))


def test_another_orgs_private_persona_is_absent_from_the_list(alice, bob, charlie):
    make_persona(key="globex-only", org=charlie.org)
    make_persona(key="acme-only", org=alice.org)
    assert "globex-only@1" in persona_ids(charlie) and "acme-only@1" not in persona_ids(charlie)
    assert "globex-only@1" not in persona_ids(alice) and "globex-only@1" not in persona_ids(bob)
    assert "acme-only@1" in persona_ids(bob)


def test_a_shadowed_platform_persona_is_listed_once_as_the_orgs_own(alice):
    own = make_persona(key="default", version=1, org=alice.org, title="acme default")
    listed = [p for p in alice.client.get("/v1/personas").json() if p["persona_id"] == "default@1"]
    assert [(p["title"], p["org_id"]) for p in listed] == [("acme default", str(own.org_id))]


def test_list_honours_limit(alice):
    assert len(alice.client.get("/v1/personas?limit=1").json()) == 1
    for bad in ("0", "201", "x"):
        response = alice.client.get(f"/v1/personas?limit={bad}")
        assert response.status_code == 422
        assert response.json()["details"]["fields"] == {"limit": ["must be an integer from 1 to 200"]}


@pytest.mark.parametrize("persona_id,found", [("default@1", "default@1"), ("default", "default@2")])
def test_detail_by_exact_id_or_bare_key_includes_the_system_prompt(bob, persona_id, found):
    response = bob.client.get(f"/v1/personas/{persona_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["persona_id"] == found and body["system_prompt"]


def test_detail_of_a_bare_key_is_its_newest_active_version(alice):
    make_persona(key="writer", version=1)
    make_persona(key="writer", version=2)
    assert alice.client.get("/v1/personas/writer").json()["persona_id"] == "writer@2"


@pytest.mark.parametrize("persona_id", ["nope", "nope@1", "default@99", "default@x", "%40", "default@1@1"])
def test_unknown_persona_is_404_personas_not_found(alice, persona_id):
    response = alice.client.get(f"/v1/personas/{persona_id}")
    assert response.status_code == 404
    assert response.json()["code"] == "personas.not_found"
    assert response["X-Trace-Id"] == response.json()["trace_id"]


def test_charlie_gets_404_for_acmes_private_persona_and_nothing_changes(alice, charlie):
    persona = make_persona(key="acme-only", org=alice.org)
    for persona_id in ("acme-only@1", "acme-only"):
        response = charlie.client.get(f"/v1/personas/{persona_id}")
        assert response.status_code == 404 and response.json()["code"] == "personas.not_found"
    persona.refresh_from_db()
    assert persona.is_active and alice.client.get("/v1/personas/acme-only@1").status_code == 200


def test_an_inactive_persona_is_404(alice):
    make_persona(key="retired", active=False)
    assert alice.client.get("/v1/personas/retired@1").status_code == 404


def test_personas_are_read_only(alice):
    assert alice.client.post("/v1/personas", {"key": "x"}).status_code == 405
    assert alice.client.delete("/v1/personas/default@1").status_code == 405


def test_personas_need_a_token(anonymous):
    response = anonymous.get("/v1/personas")
    assert response.status_code == 401 and response.json()["code"] == "auth.missing_token"


def test_builtins_are_served_over_real_http_after_table_flushes(transactional_db, live_server, alice):
    """A transactional test flushes every table; the built-ins must be back for the next one."""
    import httpx

    response = httpx.get(f"{live_server.url}/v1/personas", headers=alice.auth, timeout=10)
    assert response.status_code == 200
    assert {"default@1", "careful@1"} <= {p["persona_id"] for p in response.json()}
