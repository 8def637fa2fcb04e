"""Bearer authentication: API keys (`ak-…`) and short-lived signed access tokens.

`request.user` is the Django user; `request.auth` is the `Principal` every access check uses.

An API key's principal is remembered per process for ARKLOOP_AUTH_CACHE_SECONDS (5 s; 0 = off):
the lookup (key, membership, org and user: four tables) was a large share of each API request.
Revoking or deleting a key, deactivating a user, or changing or removing a membership or an
org, forgets every remembered principal of the process that made the change (as it happens and
again when its transaction commits); other processes notice within ARKLOOP_AUTH_CACHE_SECONDS.
Access tokens are not remembered.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from arkloop.memo import Memo
from arkloop.models import ApiKey, Membership, Org

API_KEY_PREFIX = "ak-"
LAST_USED_RESOLUTION = timedelta(minutes=1)
ACCESS_TOKEN_SALT = "arkloop.access-token"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a membership (user × org × role), and the key or token used."""

    membership: Membership
    api_key: ApiKey | None = None
    token_digest: str | None = None  # an access token's SHA-256: names the token without holding it

    @property
    def org(self) -> Org:
        return self.membership.org

    @property
    def org_id(self):
        return self.membership.org_id

    @property
    def user(self) -> AbstractBaseUser:
        return self.membership.user

    @property
    def user_id(self):
        return self.membership.user_id

    @property
    def is_admin(self) -> bool:
        return self.membership.is_admin

    @property
    def ident(self) -> str:
        """A stable string naming this principal (idempotency keys are scoped by it)."""
        return f"m:{self.membership.pk}"

    @property
    def credential(self) -> str:
        """The API key or access token this request used (open streams are counted per credential)."""
        return f"key:{self.api_key.pk}" if self.api_key is not None else f"token:{self.token_digest}"


class AuthError(AuthenticationFailed):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(detail=message, code=code)


def hash_api_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def is_api_key_shaped(token: str) -> bool:
    body = token[len(API_KEY_PREFIX):]
    return token.startswith(API_KEY_PREFIX) and len(body) == 64 and all(c in "0123456789abcdef" for c in body)


def access_token_issue(*, membership: Membership) -> str:
    return signing.dumps({"m": str(membership.pk)}, salt=ACCESS_TOKEN_SALT, compress=True)


# Principals by key hash (arkloop.memo): forgotten by `principals_forget` (see the module doc).
_principals: Memo[Principal] = Memo("principals", seconds=lambda: settings.ARKLOOP_AUTH_CACHE_SECONDS)


def principals_forget() -> None:
    """Forget every API-key principal this process remembers (a key, membership, user or org changed)."""
    _principals.forget()


def principal_from_api_key(token: str) -> Principal:
    if not is_api_key_shaped(token):
        raise AuthError("auth.invalid_api_key", "invalid API key")
    digest = hash_api_key(token)
    return _principals.get(digest, lambda: _principal_lookup(digest))


def _principal_lookup(digest: str) -> Principal:
    key = (ApiKey.objects.select_related("membership__org", "membership__user")
           .filter(key_hash=digest).first())
    # The lookup is by hash; the comparison is constant-time all the same.
    if key is None or not hmac.compare_digest(key.key_hash, digest) or key.is_revoked:
        raise AuthError("auth.invalid_api_key", "invalid or revoked API key")
    if not key.membership.user.is_active:
        raise AuthError("auth.invalid_api_key", "the key's user is inactive")
    _touch(key)
    return Principal(membership=key.membership, api_key=key)


def _touch(key: ApiKey) -> None:
    """Record when a key was last used, at most once a minute (not a write per request)."""
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


def principal_from_access_token(token: str) -> Principal:
    try:
        payload = signing.loads(token, salt=ACCESS_TOKEN_SALT,
                                max_age=settings.ARKLOOP_ACCESS_TOKEN_TTL_SECONDS)
    except signing.SignatureExpired:
        raise AuthError("auth.token_expired", "the access token has expired") from None
    except signing.BadSignature:
        raise AuthError("auth.invalid_token", "invalid access token") from None
    membership = (Membership.objects.select_related("org", "user")
                  .filter(pk=payload.get("m")).first() if isinstance(payload, dict) else None)
    if membership is None or not membership.user.is_active:
        raise AuthError("auth.invalid_token", "invalid access token")
    return Principal(membership=membership, token_digest=hashlib.sha256(token.encode()).hexdigest())


def principal_from_header(header: bytes) -> Principal:
    """Parse `Authorization: Bearer <token>`; raises AuthError (code auth.*) when it is not valid."""
    parts = header.split()
    if not parts:
        raise AuthError("auth.missing_token", "an Authorization: Bearer token is required")
    if parts[0].lower() != b"bearer" or len(parts) != 2:
        raise AuthError("auth.invalid_token", "use Authorization: Bearer <token>")
    try:
        token = parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise AuthError("auth.invalid_token", "invalid token") from None
    if token.startswith(API_KEY_PREFIX):
        return principal_from_api_key(token)
    return principal_from_access_token(token)


def principal_from_request(request: HttpRequest) -> Principal:
    """`principal_from_header` of the request's Authorization header, looked up once per request.

    Both the idempotency middleware and DRF's authentication need the principal; the second
    asks costs no query. Failures are not remembered: they raise again, the same way.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
    cached = getattr(request, "_arkloop_principal", None)
    if cached is not None and cached[0] == header:
        return cached[1]
    principal = principal_from_header(header)
    request._arkloop_principal = (header, principal)
    return principal


class BearerAuthentication(BaseAuthentication):
    def authenticate(self, request: Request):
        if not get_authorization_header(request):
            return None  # IsAuthenticated then answers 401 auth.missing_token
        principal = principal_from_request(request._request)
        return principal.user, principal

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
