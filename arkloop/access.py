"""Visibility (SPEC §2): a member sees what they created, an org admin sees the whole org.

Every read of a tenant-owned object goes through `visible_to`, so another org's objects and a
colleague's (for members) are simply absent: the caller gets 404, never 403.
"""
from __future__ import annotations

import uuid
from typing import Any

from django.db import connection
from django.db.models import Model, QuerySet
from rest_framework.permissions import BasePermission

from arkloop.authentication import Principal
from arkloop.errors import NotFound


def visible_to(queryset: QuerySet, principal: Principal, *, owner_field: str = "created_by") -> QuerySet:
    queryset = queryset.filter(org_id=principal.org_id)
    if not principal.is_admin:
        queryset = queryset.filter(**{f"{owner_field}_id": principal.user_id})
    return queryset


def visible_sql(principal: Principal, *, model: type[Model], alias: str,
                owner_field: str = "created_by") -> tuple[str, list[Any]]:
    """`visible_to` as a SQL condition on `model`'s table named `alias`, and its parameters
    prepared by the model's fields for the connection's database (a UUID is text on SQLite)."""
    org = model._meta.get_field("org")
    condition, params = f"{alias}.{org.column} = %s", [org.get_db_prep_value(principal.org_id, connection)]
    if not principal.is_admin:
        owner = model._meta.get_field(owner_field)
        condition += f" AND {alias}.{owner.column} = %s"
        params.append(owner.get_db_prep_value(principal.user_id, connection))
    return condition, params


def parse_uuid(value: object, *, not_found: type[NotFound]) -> uuid.UUID:
    """A path id as a UUID; anything else is the resource's 404 (a malformed id names nothing)."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise not_found() from None


class OrgAdminsOnly(BasePermission):
    """Endpoints only an org admin may use (MCP servers, webhooks): a member gets 403 auth.forbidden,
    whatever the object — the same answer for every id, so it reveals nothing."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return request.auth is not None and request.auth.is_admin
