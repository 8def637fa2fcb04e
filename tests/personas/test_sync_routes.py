"""`manage.py sync_routes`: operators declare routes in YAML; keys are encrypted and never echoed."""
import logging
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from personas.credentials import route_api_key
from personas.models import Route
from personas.services import route_set_api_key

SECRET = "sk-proj-routes-file-secret-424242"

ROUTES = f"""\
routes:
  - id: gpt
    provider: openai
    model: gpt-4o-mini
    base_url: http://127.0.0.1:9/v1
    api_key: {SECRET}
    prices: {{input: 0.15, cached_input: 0.075, output: "0.60"}}
    priority: 10
    fallback: claude
  - id: claude
    provider: anthropic
    model: claude-test
    api_key_env: ARKLOOP_ROUTE_ANTHROPIC
    org: acme
"""


def sync(path) -> str:
    out = StringIO()
    call_command("sync_routes", "--file", str(path), stdout=out, no_color=True)
    return out.getvalue()


@pytest.fixture
def routes_file(tmp_path, alice):
    """The file names alice's org, acme."""
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    return path


def test_declared_routes_are_created_with_decimal_prices_org_and_fallback(alice, routes_file):
    out = sync(routes_file)
    assert "created    route gpt" in out and "created    route claude" in out
    gpt, claude = Route.objects.get(id="gpt"), Route.objects.get(id="claude")
    assert (gpt.provider, gpt.model, gpt.priority) == ("openai", "gpt-4o-mini", 10)
    assert gpt.base_url == "http://127.0.0.1:9/v1"
    assert (gpt.price_input, gpt.price_cached_input, gpt.price_output) == (
        Decimal("0.15"), Decimal("0.075"), Decimal("0.6"))
    assert gpt.fallback_id == "claude" and gpt.org_id is None
    assert claude.org_id == alice.org.id and claude.api_key_env == "ARKLOOP_ROUTE_ANTHROPIC"
    assert gpt.context_window == 128_000


def test_a_route_declares_its_context_window(db, routes_file):
    routes_file.write_text(ROUTES.replace("priority: 10", "priority: 10\n    context_window: 8192"))
    sync(routes_file)
    assert Route.objects.get(id="gpt").context_window == 8192


def test_the_api_key_is_stored_encrypted_and_never_printed_or_logged(db, routes_file, caplog):
    with caplog.at_level(logging.DEBUG):
        out = sync(routes_file)
    gpt = Route.objects.get(id="gpt")
    assert gpt.api_key_encrypted and SECRET not in gpt.api_key_encrypted
    assert route_api_key(gpt) == SECRET
    for text in (out, caplog.text, repr(gpt), str(gpt)):
        assert SECRET not in text and gpt.api_key_encrypted not in text


def test_syncing_the_same_file_again_changes_nothing(db, routes_file):
    sync(routes_file)
    before = list(Route.objects.values_list("id", "updated_at", "api_key_encrypted"))
    out = sync(routes_file)
    assert "unchanged  route gpt" in out and "unchanged  route claude" in out
    assert list(Route.objects.values_list("id", "updated_at", "api_key_encrypted")) == before


def test_changes_are_reported_by_field_name_only(db, routes_file):
    sync(routes_file)
    routes_file.write_text(ROUTES.replace("priority: 10", "priority: 20").replace(SECRET, "sk-rotated-key"))
    out = sync(routes_file)
    assert "updated    route gpt (priority, credentials)" in out
    assert "sk-rotated-key" not in out and route_api_key(Route.objects.get(id="gpt")) == "sk-rotated-key"


def test_api_key_env_replaces_a_key_set_elsewhere_and_no_credentials_keeps_it(db, routes_file):
    sync(routes_file)
    claude = Route.objects.get(id="claude")
    route_set_api_key(route=claude, plaintext="sk-from-the-admin")
    routes_file.write_text(ROUTES.replace(f"    api_key: {SECRET}\n", ""))
    sync(routes_file)
    assert route_api_key(Route.objects.get(id="gpt")) == SECRET  # no credentials in the file: kept
    claude.refresh_from_db()
    assert claude.api_key_encrypted == "" and claude.credential_source == "env"


def test_the_default_file_comes_from_the_setting(db, routes_file, settings):
    settings.ARKLOOP_ROUTES_FILE = str(routes_file)
    call_command("sync_routes", stdout=StringIO())
    assert Route.objects.filter(id="gpt").exists()
    settings.ARKLOOP_ROUTES_FILE = ""
    with pytest.raises(CommandError, match="ARKLOOP_ROUTES_FILE"):
        call_command("sync_routes", stdout=StringIO())


@pytest.mark.parametrize("edit, problem", [
    (("org: acme", "org: nowhere"), "unknown org slugs: ['nowhere']"),
    (("fallback: claude", "fallback: missing"), "fallback must name another existing route"),
    (("fallback: claude", "fallback: gpt"), "fallback must name another existing route"),
    (("provider: openai", "provider: mystery"), "provider must be one of"),
    (("input: 0.15", "input: -1"), "prices.input"),
    (("input: 0.15", "input: 0.1234567"), "prices.input"),
    (("api_key_env: ARKLOOP_ROUTE_ANTHROPIC", f"api_key_env: X\n    api_key: {SECRET}"), "not both"),
    (("priority: 10", "priority: 10\n    colour: red"), "unknown fields ['colour']"),
    (("api_key_env: ARKLOOP_ROUTE_ANTHROPIC", "api_key_env: SECRET_KEY"), "api_key_env must name an environment"),
    (("id: claude", "id: gpt"), "routes declared twice"),
    (("base_url: http://127.0.0.1:9/v1", f"base_url: {SECRET}"), "base_url must be an http(s) URL"),
    (("routes:", f"routes: [{SECRET}"), "cannot read YAML near line"),
    (("priority: 10", "priority: 10\n    context_window: 0"), "context_window must be an integer"),
    (("priority: 10", "priority: 10\n    context_window: big"), "context_window must be an integer"),
])
def test_an_invalid_file_writes_nothing_and_the_error_holds_no_secret(alice, routes_file, edit, problem):
    routes_file.write_text(ROUTES.replace(*edit))
    with pytest.raises(CommandError) as excinfo:
        sync(routes_file)
    assert problem in str(excinfo.value) and SECRET not in str(excinfo.value)
    assert not Route.objects.filter(id__in=["gpt", "claude"]).exists()


@pytest.mark.parametrize("edit", [("base_url: http://127.0.0.1:9/v1", "base_url: http://127.0.0.1:10/v1"),
                                  ("provider: openai", "provider: anthropic")])
def test_moving_a_route_elsewhere_removes_its_stored_key_unless_the_file_gives_one(db, routes_file, edit):
    sync(routes_file)
    routes_file.write_text(ROUTES.replace(*edit))  # moved, with the key: the key is the file's
    sync(routes_file)
    assert route_api_key(Route.objects.get(id="gpt")) == SECRET
    routes_file.write_text(ROUTES.replace(f"    api_key: {SECRET}\n", ""))  # moved back, no key given
    out = sync(routes_file)
    assert Route.objects.get(id="gpt").api_key_encrypted == "" and "credentials" in out
