"""persona_resolve / route_resolve: what a run will execute, from what the client sent."""
import pytest

from arkloop.errors import ValidationFailed
from personas.selectors import persona_resolve, route_resolve
from tests.personas.helpers import make_persona, make_route


def fields_of(excinfo) -> dict:
    return excinfo.value.details["fields"]


def test_nothing_resolves_to_the_default_builtin_persona(alice):
    for nothing in (None, ""):
        persona = persona_resolve(org_id=alice.org.id, persona_id=nothing)
        assert persona.public_id == "default@2"
        assert persona.is_builtin and persona.org_id is None


def test_default_persona_follows_the_setting(alice, settings):
    settings.ARKLOOP_DEFAULT_PERSONA = "careful"
    assert persona_resolve(org_id=alice.org.id, persona_id=None).public_id == "careful@1"


def test_builtin_personas_have_the_documented_tools(alice):
    default = persona_resolve(org_id=alice.org.id, persona_id="default")
    careful = persona_resolve(org_id=alice.org.id, persona_id="careful")
    assert default.tools == ["echo", "calculator", "current_time", "ask_user", "mcp__*"]
    assert careful.tools == ["echo", "calculator", "current_time", "ask_user"]
    assert default.confirm_tools == [] and careful.confirm_tools == ["calculator"]
    assert default.route_id == careful.route_id == "stub"


def test_bare_key_means_the_newest_active_version(alice):
    make_persona(key="writer", version=1)
    make_persona(key="writer", version=3)
    make_persona(key="writer", version=4, active=False)
    make_persona(key="writer", version=2)
    assert persona_resolve(org_id=alice.org.id, persona_id="writer").public_id == "writer@3"


def test_key_at_version_is_exact_even_when_newer_versions_exist(alice):
    make_persona(key="writer", version=1)
    make_persona(key="writer", version=2)
    assert persona_resolve(org_id=alice.org.id, persona_id="writer@1").version == 1


def test_an_inactive_version_is_unknown_even_by_exact_id(alice):
    make_persona(key="writer", version=1, active=False)
    with pytest.raises(ValidationFailed) as excinfo:
        persona_resolve(org_id=alice.org.id, persona_id="writer@1")
    assert "persona_id" in fields_of(excinfo)


@pytest.mark.parametrize("bad", ["nope", "nope@1", "default@99", "default@", "@1", "default@x", "default@-1", 7])
def test_unknown_or_malformed_persona_ids_fail_validation_naming_persona_id(alice, bad):
    with pytest.raises(ValidationFailed) as excinfo:
        persona_resolve(org_id=alice.org.id, persona_id=bad)
    assert excinfo.value.status == 422 and excinfo.value.code == "validation.error"
    assert list(fields_of(excinfo)) == ["persona_id"]


def test_another_orgs_persona_is_unknown_to_this_org(alice, charlie):
    make_persona(key="globex-only", org=charlie.org)
    assert persona_resolve(org_id=charlie.org.id, persona_id="globex-only").org_id == charlie.org.id
    with pytest.raises(ValidationFailed) as excinfo:
        persona_resolve(org_id=alice.org.id, persona_id="globex-only@1")
    assert "persona_id" in fields_of(excinfo)


def test_org_own_persona_wins_over_platform_on_equal_key_and_version(alice, charlie):
    own = make_persona(key="default", version=2, org=alice.org)
    assert persona_resolve(org_id=alice.org.id, persona_id="default@2") == own
    assert persona_resolve(org_id=alice.org.id, persona_id=None) == own
    assert persona_resolve(org_id=charlie.org.id, persona_id="default@2").is_builtin


def test_bare_key_takes_the_newest_version_across_org_and_platform(alice):
    make_persona(key="default", version=3)
    make_persona(key="default", version=1, org=alice.org)
    assert persona_resolve(org_id=alice.org.id, persona_id="default").public_id == "default@3"


def test_route_comes_from_the_request_then_the_persona_then_the_setting(alice, settings):
    make_route(route_id="fast")
    make_route(route_id="cheap")
    persona = make_persona(key="writer", route_id="fast")
    assert route_resolve(org_id=alice.org.id, route_id="cheap", persona=persona).id == "cheap"
    assert route_resolve(org_id=alice.org.id, route_id=None, persona=persona).id == "fast"
    assert route_resolve(org_id=alice.org.id, route_id=None, persona=None).id == "stub"
    settings.ARKLOOP_DEFAULT_ROUTE = "cheap"
    assert route_resolve(org_id=alice.org.id, route_id="", persona=make_persona(key="plain")).id == "cheap"


def test_builtin_stub_route_has_illustrative_decimal_prices(alice):
    stub = route_resolve(org_id=alice.org.id, route_id="stub", persona=None)
    assert (stub.provider, stub.model, stub.org_id) == ("stub", "stub-echo-1", None)
    assert stub.price_input > stub.price_cached_input > 0 and stub.price_output > 0


@pytest.mark.parametrize("route_id", ["nope", "retired", "globex-private", 5])
def test_unknown_inactive_or_foreign_routes_fail_validation_naming_route_id(alice, charlie, route_id):
    make_route(route_id="retired", active=False)
    make_route(route_id="globex-private", org=charlie.org)
    with pytest.raises(ValidationFailed) as excinfo:
        route_resolve(org_id=alice.org.id, route_id=route_id, persona=None)
    assert list(fields_of(excinfo)) == ["route_id"]


def test_a_persona_pointing_at_a_foreign_route_fails_on_route_id(alice, charlie):
    make_route(route_id="globex-private", org=charlie.org)
    persona = make_persona(key="writer", route_id="globex-private")
    with pytest.raises(ValidationFailed) as excinfo:
        route_resolve(org_id=alice.org.id, route_id=None, persona=persona)
    assert "route_id" in fields_of(excinfo)
    assert route_resolve(org_id=charlie.org.id, route_id=None, persona=persona).id == "globex-private"
