"""Reads of the tenancy core."""
from __future__ import annotations

from django.contrib.auth import authenticate, get_user_model
from django.db.models import QuerySet

from arkloop.access import parse_uuid
from arkloop.authentication import Principal
from arkloop.errors import NotFound, Unauthorized
from arkloop.models import ApiKey, Membership


class ApiKeyNotFound(NotFound):
    message = "API key not found"


def api_key_list(*, principal: Principal) -> QuerySet[ApiKey]:
    """A member's own keys; an admin's view is every key of the org."""
    keys = ApiKey.objects.filter(membership__org_id=principal.org_id).select_related("membership__user")
    if not principal.is_admin:
        keys = keys.filter(membership_id=principal.membership.pk)
    return keys


def access_api_key(*, principal: Principal, key_id: str) -> ApiKey:
    key = api_key_list(principal=principal).filter(pk=parse_uuid(key_id, not_found=ApiKeyNotFound)).first()
    if key is None:
        raise ApiKeyNotFound()
    return key


def user_for_login(*, email: str, password: str):
    """The active user with this email and password, or None.

    The password hasher runs either way — for an unknown email too, as Django's own ModelBackend
    does for an unknown username — so a wrong email and a wrong password take the same time.
    """
    User = get_user_model()
    user = User.objects.filter(email__iexact=email).order_by("pk").first()
    if user is None:
        User().set_password(password)
        return None
    return authenticate(username=user.get_username(), password=password)


def membership_for_user(*, user, org_slug: str | None) -> Membership:
    """The membership a password login opens: the named org, or the user's only one."""
    memberships = Membership.objects.select_related("org", "user").filter(user=user)
    if org_slug:
        memberships = memberships.filter(org__slug=org_slug)
    found = list(memberships[:2])
    if len(found) != 1:
        message = "no membership in that org" if org_slug else "name the org: the user belongs to several"
        if not found:
            message = "the user belongs to no org"
        raise Unauthorized("auth.invalid_token", message)
    return found[0]
