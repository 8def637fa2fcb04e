"""Shared fixtures. Stories use three people: alice (admin of acme), bob (member of acme) and
charlie (admin of another org, globex), each with an API key and a ready API client."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from arkloop.models import Membership
from arkloop.services import api_key_create, membership_ensure
from tests.servers import DaphneServer, test_database_url


@dataclass
class Actor:
    membership: Membership
    key: str
    client: APIClient

    @property
    def user(self):
        return self.membership.user

    @property
    def org(self):
        return self.membership.org

    @property
    def auth(self) -> dict[str, str]:
        """Headers for real HTTP clients (httpx, http.client)."""
        return {"Authorization": f"Bearer {self.key}"}


def make_actor(*, org: str, email: str, role: str) -> Actor:
    membership = membership_ensure(org_slug=org, email=email, role=role)
    _, key = api_key_create(membership=membership, name=f"{email} test key")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return Actor(membership=membership, key=key, client=client)


@pytest.fixture
def alice(db) -> Actor:
    return make_actor(org="acme", email="alice@acme.test", role="admin")


@pytest.fixture
def bob(db) -> Actor:
    return make_actor(org="acme", email="bob@acme.test", role="member")


@pytest.fixture
def charlie(db) -> Actor:
    return make_actor(org="globex", email="charlie@globex.test", role="admin")


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session")
def database_url(django_db_setup, django_db_blocker) -> str:
    """DATABASE_URL of the test database, for subprocesses (Daphne, runners) to share it."""
    with django_db_blocker.unblock():
        return test_database_url()


@pytest.fixture(autouse=True)
def _live_server_helper(request):
    """Replaces pytest-django's helper, which expects its own live_server object: ours (Daphne)
    only needs the test to run with transactional_db so its data is committed and visible."""
    if "live_server" in request.fixturenames:
        request.getfixturevalue("transactional_db")
    yield


@pytest.fixture(scope="session")
def live_server(database_url) -> DaphneServer:
    """A real Daphne serving arkloop.asgi on the test database. Use with `transactional_db`."""
    with DaphneServer(database_url=database_url) as server:
        yield server


DB_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}


@functools.cache
def _builtin_persona_specs():
    from personas.builtins import load_persona_specs

    return load_persona_specs()


@pytest.fixture(autouse=True)
def builtin_personas(request) -> None:
    """A migration loads the built-in personas and the `stub` route, but every transactional_db test
    flushes all tables when it ends: put them back for each test that uses the database."""
    if not (DB_FIXTURES & set(request.fixturenames) or request.node.get_closest_marker("django_db")):
        return
    from personas.builtins import builtin_personas_sync, builtin_routes_ensure
    from personas.models import Persona, Route

    request.getfixturevalue("_django_db_helper")
    builtin_routes_ensure(route_model=Route)
    builtin_personas_sync(persona_model=Persona, specs=_builtin_persona_specs())


@pytest.fixture(autouse=True)
def _memos_forgotten() -> None:
    """Each test starts with empty memos (arkloop.memo): tests empty the database between them
    without the saves and deletes that would make a process forget what it remembered."""
    from arkloop.memo import memos_forget_all

    memos_forget_all()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """No connection pool in the test process itself.

    A pool lends each thread a connection until the thread closes it; the suite's many short-lived
    threads (concurrent creates, stream readers) would drain it and later tests would wait on an
    empty pool. The servers and runners the tests start as subprocesses keep the pool, as in
    production.
    """
    from django.db import connections

    for connection in connections.all():
        connection.settings_dict.get("OPTIONS", {}).pop("pool", None)
