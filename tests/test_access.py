"""`visible_sql` is `visible_to` in SQL: on SQLite and PostgreSQL alike, a query with its condition
finds exactly the rows the ORM's rule finds, for an admin, a member and another org's admin."""
from __future__ import annotations

import uuid

import pytest
from django.db import connection

from arkloop.access import visible_sql, visible_to
from arkloop.authentication import Principal
from threads.models import Thread

pytestmark = pytest.mark.django_db


def visible_ids_sql(principal: Principal) -> set[uuid.UUID]:
    condition, params = visible_sql(principal, model=Thread, alias="t")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT t.id FROM {Thread._meta.db_table} t WHERE {condition}", params)
        return {uuid.UUID(str(pk)) for (pk,) in cursor.fetchall()}


def test_visible_sql_finds_what_visible_to_finds(alice, bob, charlie):
    for actor, title in [(alice, "alice's"), (bob, "bob's"), (bob, "bob's second"), (charlie, "charlie's")]:
        Thread.objects.create(org=actor.org, created_by=actor.user, title=title)
    expected_counts = {"alice": 3, "bob": 2, "charlie": 1}
    for name, actor in [("alice", alice), ("bob", bob), ("charlie", charlie)]:
        principal = Principal(membership=actor.membership)
        orm = set(visible_to(Thread.objects.all(), principal).values_list("id", flat=True))
        assert len(orm) == expected_counts[name]
        assert visible_ids_sql(principal) == orm, name
