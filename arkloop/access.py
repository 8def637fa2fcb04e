"""Visibility (SPEC §2): a member sees what they created, an org admin sees the whole org.

Every read of a tenant-owned object goes through `visible_to`, so another org's objects and a
colleague's (for members) are simply absent: the caller gets 404, never 403.
"""
from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from rest_framework.permissions import BasePermission

from arkloop.authentication import Principal
from arkloop.errors import NotFound


def visible_to(queryset: QuerySet, principal: Principal, *, owner_field: str = "created_by") -> QuerySet:
    queryset = queryset.filter(org_id=principal.org_id)
    if not principal.is_admin:
        queryset = queryset.filter(**{f"{owner_field}_id": principal.user_id})
    return queryset


def visible_sql(principal: Principal, *, alias: str, owner_column: str = "created_by_id") -> tuple[str, list[Any]]:
    """`visible_to` as a SQL condition on the table named `alias`, and its parameters."""
    if principal.is_admin:
        return f"{alias}.org_id = %s", [principal.org_id]
    return f"{alias}.org_id = %s AND {alias}.{owner_column} = %s", [principal.org_id, principal.user_id]


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
