"""Admin pages of personas and routes: searchable, filterable, built-ins marked, key write-only."""
import pytest
from django.contrib.auth import get_user_model

from personas.credentials import route_api_key
from personas.models import Persona, Route
from personas.services import route_set_api_key
from tests.personas.helpers import make_route

SECRET = "sk-admin-page-secret-31337"


@pytest.fixture
def staff(db, client):
    user = get_user_model().objects.create_superuser("root", "root@example.test", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def paid_route(db):
    route = make_route(route_id="paid")
    route_set_api_key(route=route, plaintext=SECRET)
    route.refresh_from_db()
    return route


def test_route_change_page_shows_neither_the_key_nor_its_ciphertext(staff, paid_route):
    page = staff.get(f"/admin/personas/route/{paid_route.pk}/change/").content.decode()
    assert "encrypted" in page and 'name="api_key"' in page
    assert SECRET not in page and paid_route.api_key_encrypted not in page


def test_route_list_search_and_filters_render_without_secrets(staff, paid_route):
    for url in ("/admin/personas/route/", "/admin/personas/route/?q=paid", "/admin/personas/route/?provider=openai",
                "/admin/personas/route/?is_active__exact=1"):
        response = staff.get(url)
        assert response.status_code == 200 and "paid" in response.content.decode()
        assert SECRET not in response.content.decode()
        assert paid_route.api_key_encrypted not in response.content.decode()


def route_form(**overrides) -> dict:
    form = {"org": "", "provider": "openai", "model": "gpt-test", "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "", "price_input": "3", "price_cached_input": "0.3", "price_output": "15",
            "context_window": "128000", "priority": "0", "fallback": "", "is_active": "on", "api_key": ""}
    return {**form, **overrides}


def test_a_key_typed_in_the_admin_is_stored_encrypted_and_not_echoed(staff):
    response = staff.post("/admin/personas/route/add/", route_form(id="typed", api_key=SECRET), follow=True)
    assert response.status_code == 200 and SECRET not in response.content.decode()
    route = Route.objects.get(id="typed")
    assert route.api_key_encrypted and route_api_key(route) == SECRET
    assert SECRET not in staff.get("/admin/personas/route/typed/history/").content.decode()


def test_saving_with_a_blank_key_keeps_the_stored_one_and_clear_removes_it(staff, paid_route):
    staff.post(f"/admin/personas/route/{paid_route.pk}/change/", route_form(priority="7"))
    paid_route.refresh_from_db()
    assert paid_route.priority == 7 and route_api_key(paid_route) == SECRET
    staff.post(f"/admin/personas/route/{paid_route.pk}/change/", route_form(clear_api_key="on"))
    paid_route.refresh_from_db()
    assert paid_route.api_key_encrypted == ""


def test_a_failed_form_does_not_render_the_typed_key_back(staff):
    response = staff.post("/admin/personas/route/add/", route_form(id="bad id!", api_key=SECRET))
    assert response.status_code == 200 and SECRET not in response.content.decode()
    assert not Route.objects.filter(model="gpt-test").exists()


def test_persona_list_marks_builtins_and_can_be_searched_and_filtered(staff):
    for url in ("/admin/personas/persona/?q=careful", "/admin/personas/persona/?is_builtin__exact=1",
                "/admin/personas/persona/?org__isnull=True"):
        response = staff.get(url)
        assert response.status_code == 200 and "careful@1" in response.content.decode()
    assert "careful@1" not in staff.get("/admin/personas/persona/?is_builtin__exact=0").content.decode()


def test_a_builtin_persona_can_only_be_switched_off_in_the_admin(staff):
    builtin = Persona.objects.get(key="careful", version=1, org__isnull=True)
    page = staff.get(f"/admin/personas/persona/{builtin.pk}/change/").content.decode()
    assert 'name="is_active"' in page and 'name="system_prompt"' not in page
    assert 'name="post"' not in staff.get(f"/admin/personas/persona/{builtin.pk}/delete/").content.decode()


def persona_form(**overrides) -> dict:
    form = {"org": "", "key": "thrifty", "version": "1", "title": "Thrifty", "description": "", "system_prompt": "",
            "route_id": "stub", "tools": '["echo"]', "confirm_tools": "[]", "limits": "{}",
            "max_output_tokens": "1024", "temperature": "", "is_active": "on"}
    return {**form, **overrides}


def test_persona_limits_typed_in_the_admin_follow_the_same_rules_as_a_persona_file(staff):
    refused = staff.post("/admin/personas/persona/add/", persona_form(limits='{"max_turns": -2}'))
    assert refused.status_code == 200 and "must not be negative" in refused.content.decode()
    assert not Persona.objects.filter(key="thrifty").exists()
    staff.post("/admin/personas/persona/add/", persona_form(limits='{"max_iterations": 3, "max_cost_usd": 1.5}'))
    assert Persona.objects.get(key="thrifty").limits == {"max_turns": 3, "max_cost_usd": 1.5}


@pytest.fixture
def staff_editor(db, client):
    """Staff who may edit routes, but not a superuser."""
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("editor", "editor@example.test", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_route", "change_route", "add_route"]))
    client.force_login(user)
    return client


def test_staff_who_are_not_superusers_cannot_see_or_change_credentials_or_base_url(staff_editor, paid_route):
    page = staff_editor.get(f"/admin/personas/route/{paid_route.pk}/change/").content.decode()
    assert 'name="api_key"' not in page and 'name="api_key_env"' not in page and 'name="base_url"' not in page
    staff_editor.post(f"/admin/personas/route/{paid_route.pk}/change/",
                      route_form(base_url="http://attacker.example/v1", api_key_env="ARKLOOP_ROUTE_X",
                                 api_key="sk-mine", priority="3"))
    paid_route.refresh_from_db()
    assert paid_route.priority == 3  # the rest of the form was saved
    assert paid_route.base_url != "http://attacker.example/v1" and paid_route.api_key_env == ""
    assert route_api_key(paid_route) == SECRET


def test_staff_changing_the_provider_removes_the_stored_key(staff_editor, paid_route):
    staff_editor.post(f"/admin/personas/route/{paid_route.pk}/change/", route_form(provider="anthropic"))
    paid_route.refresh_from_db()
    assert paid_route.provider == "anthropic" and paid_route.api_key_encrypted == ""


def test_a_superuser_changing_base_url_removes_the_stored_key_unless_giving_a_new_one(staff, paid_route):
    staff.post(f"/admin/personas/route/{paid_route.pk}/change/", route_form(base_url="http://127.0.0.1:10/v1"))
    paid_route.refresh_from_db()
    assert paid_route.api_key_encrypted == ""
    staff.post(f"/admin/personas/route/{paid_route.pk}/change/",
               route_form(base_url="http://127.0.0.1:11/v1", api_key="sk-for-the-new-host"))
    paid_route.refresh_from_db()
    assert route_api_key(paid_route) == "sk-for-the-new-host"


@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL", "ARKLOOP_ENCRYPTION_KEY", "ARKLOOP_ROUTE_"])
def test_an_env_credential_must_be_an_arkloop_route_variable(staff, name):
    response = staff.post("/admin/personas/route/add/", route_form(id="env", api_key_env=name))
    assert response.status_code == 200 and "ARKLOOP_ROUTE_" in response.content.decode()
    assert not Route.objects.filter(id="env").exists()
    staff.post("/admin/personas/route/add/", route_form(id="env", api_key_env="ARKLOOP_ROUTE_OPENAI"))
    assert Route.objects.get(id="env").api_key_env == "ARKLOOP_ROUTE_OPENAI"
