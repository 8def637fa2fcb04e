"""Writes of the tenancy core: orgs, users, memberships and API keys."""
from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from arkloop.authentication import API_KEY_PREFIX, hash_api_key
from arkloop.models import ApiKey, Membership, Org


def api_key_create(*, membership: Membership, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; returns it with its plaintext, which is shown once and never stored."""
    plaintext = API_KEY_PREFIX + secrets.token_hex(32)
    key = ApiKey.objects.create(membership=membership, name=name, prefix=plaintext[:11],
                                key_hash=hash_api_key(plaintext))
    return key, plaintext


def api_key_revoke(*, key: ApiKey) -> None:
    """Revoke a key; revoking twice keeps the first revocation time."""
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


@transaction.atomic
def membership_ensure(*, org_slug: str, email: str, role: str | None = None) -> Membership:
    """The membership of `email` in org `org_slug`, creating the org, user and membership if missing.

    An existing membership keeps its role unless `role` is given.
    """
    org, _ = Org.objects.get_or_create(slug=org_slug, defaults={"name": org_slug})
    User = get_user_model()
    user = User.objects.filter(email__iexact=email).order_by("pk").first()
    if user is None:
        user = User(username=email, email=email)
        user.set_unusable_password()
        user.save()
    membership, created = Membership.objects.get_or_create(
        org=org, user=user, defaults={"role": role or Membership.Role.MEMBER})
    if not created and role and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership
