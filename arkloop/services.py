"""Writes of the tenancy core: orgs, users, memberships, API keys and password logins."""
from __future__ import annotations

import hashlib
import math
import secrets
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from arkloop.authentication import API_KEY_PREFIX, hash_api_key, principals_forget
from arkloop.errors import TooManyRequests, Unauthorized, ValidationFailed
from arkloop.models import ApiKey, LoginAttempt, Membership, Org
from arkloop.selectors import membership_for_user, user_for_login

LOGIN_WINDOW = timedelta(minutes=5)
LOGIN_MAX_FAILURES = 10


class LoginThrottled(TooManyRequests):
    code = "auth.throttled"
    message = "too many failed logins for this email or from this address; try again later"


def org_lock(*, org_id: object) -> None:
    """Lock the org's row until the caller's transaction ends, so a per-org cap can count and insert
    as one step for every concurrent creator of the org.

    One statement, no ORM compilation: it is on the path of every run creation when the org has a
    cap. SQLite has no row locks: the ORM's form, which it runs without FOR UPDATE (IMMEDIATE
    transactions serialize writers)."""
    if connection.vendor != "postgresql":
        list(Org.objects.select_for_update().filter(pk=org_id).values_list("pk", flat=True))
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {Org._meta.db_table} WHERE id = %s FOR UPDATE",
                       [Org._meta.pk.get_db_prep_value(org_id, connection)])


def check_org_under_cap(*, org_id: object, cap: int, existing: QuerySet, what: str) -> None:
    """Lock the org's row, then 422 when it already has `cap` of `what` (a plural noun; `existing`
    are the org's rows that count). A cap of 0 or less is no cap: neither lock nor count.

    Call it inside the transaction that inserts the new row, so the count and the insert are one
    step for every concurrent creator of the org (the count comes after the lock)."""
    if cap <= 0:
        return
    org_lock(org_id=org_id)
    if existing.count() >= cap:
        message = f"an org may have at most {cap} {what}"
        raise ValidationFailed({"non_field_errors": [message]}, message=message)


def api_key_create(*, membership: Membership, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; returns it with its plaintext, which is shown once and never stored."""
    plaintext = API_KEY_PREFIX + secrets.token_hex(32)
    key = ApiKey.objects.create(membership=membership, name=name, prefix=plaintext[:11],
                                key_hash=hash_api_key(plaintext))
    return key, plaintext


def api_key_revoke(*, key: ApiKey) -> None:
    """Revoke a key; revoking twice keeps the first revocation time."""
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    principals_forget()


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


def _email_digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _seconds_throttled(*, attempt: LoginAttempt, field: str, now: datetime) -> float | None:
    """When LOGIN_MAX_FAILURES attempts with the same `field` came before `attempt` within the
    window: the seconds until the oldest of them leaves it. Else None."""
    earlier = list(LoginAttempt.objects.filter(**{field: getattr(attempt, field)}, pk__lt=attempt.pk,
                                               created_at__gt=now - LOGIN_WINDOW)
                   .order_by("-pk").values_list("created_at", flat=True)[:LOGIN_MAX_FAILURES])
    if len(earlier) < LOGIN_MAX_FAILURES:
        return None
    return (min(earlier) + LOGIN_WINDOW - now).total_seconds()


def login_attempt_begin(*, email: str, address: str) -> LoginAttempt:
    """Record a password login about to be checked; it counts as a failure until it succeeds.

    Raises LoginThrottled (429 with Retry-After, the row removed again) when LOGIN_MAX_FAILURES
    attempts for this email, or from this address, are already within LOGIN_WINDOW. The rows live
    in the database, so every server process sees the same counts.
    """
    now = timezone.now()
    LoginAttempt.objects.filter(created_at__lte=now - LOGIN_WINDOW).delete()
    attempt = LoginAttempt.objects.create(email_digest=_email_digest(email), address=address[:64], created_at=now)
    waits = [wait for field in ("email_digest", "address")
             if (wait := _seconds_throttled(attempt=attempt, field=field, now=now)) is not None]
    if waits:
        attempt.delete()
        raise LoginThrottled(headers={"Retry-After": str(max(1, math.ceil(max(waits))))})
    return attempt


def access_token_login(*, email: str, password: str, org_slug: str | None, address: str) -> Membership:
    """The membership a password login opens, for `POST /v1/auth/token`.

    Throttled per email and per client address (`login_attempt_begin`). The password hasher runs
    whether or not the email exists, so both failures take the same time and read the same: 401.
    """
    attempt = login_attempt_begin(email=email, address=address)
    user = user_for_login(email=email, password=password)
    if user is None:
        raise Unauthorized("auth.invalid_token", "wrong email or password")
    attempt.delete()  # the password was right: not a failure, whatever the org check says
    return membership_for_user(user=user, org_slug=org_slug)
