"""Provider credentials at rest: Fernet tokens keyed from settings, or an environment variable.

A variable must be named `ARKLOOP_ROUTE_…`: a route names where its key comes from, and without
the prefix it could name any of the server's own secrets (SECRET_KEY, DATABASE_URL, …) and have
it sent to the route's endpoint. The rule is checked where routes are edited and again here,
where the key is read, so a route stored before the rule existed cannot read other variables.

`ARKLOOP_ENCRYPTION_KEY` is one Fernet key, or several separated by commas (the first encrypts,
all decrypt: rotate by prepending a new key, then re-save the routes). When it is unset, a key is
derived from SECRET_KEY, so changing SECRET_KEY makes stored route keys unreadable.
A plaintext key only ever lives in memory: it is never logged, rendered or put in an event.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from personas.models import Route

_DERIVATION_LABEL = b"arkloop.route-credentials.v1:"
API_KEY_ENV_PREFIX = "ARKLOOP_ROUTE_"
API_KEY_ENV_RULE = f"must name an environment variable starting with {API_KEY_ENV_PREFIX} (A-Z, 0-9, _)"
_API_KEY_ENV = re.compile(rf"{API_KEY_ENV_PREFIX}[A-Z0-9_]+")


class CredentialsUnreadable(Exception):
    """A route's key cannot be read: the stored key cannot be decrypted with the configured
    encryption key (it was rotated away), or its variable is not one routes may read."""


def api_key_env_allowed(name: str) -> bool:
    """Whether a route may read its key from the environment variable `name`."""
    return _API_KEY_ENV.fullmatch(name) is not None


def _fernet_key(raw: str) -> bytes:
    """A configured key as a Fernet key; a value that is not one is stretched into one."""
    try:
        Fernet(raw.encode())
        return raw.encode()
    except (ValueError, TypeError):
        return base64.urlsafe_b64encode(hashlib.sha256(_DERIVATION_LABEL + raw.encode()).digest())


def _cipher() -> MultiFernet:
    configured = [k.strip() for k in settings.ARKLOOP_ENCRYPTION_KEY.split(",") if k.strip()]
    keys = [_fernet_key(k) for k in configured] or [_fernet_key(settings.SECRET_KEY)]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt_secret(plaintext: str) -> str:
    return _cipher().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt_secret(token: str) -> str:
    try:
        return _cipher().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise CredentialsUnreadable("the stored API key cannot be decrypted with ARKLOOP_ENCRYPTION_KEY") from None


def route_api_key(route: Route) -> str | None:
    """The route's API key in plaintext, for the provider client only; None when it has none.

    An encrypted key wins over `api_key_env`; an env var that is unset or empty gives None.
    Raises CredentialsUnreadable (whose message holds no secret, nor the variable's name) when
    decryption fails or the variable is not an `ARKLOOP_ROUTE_…` one.
    """
    if route.api_key_encrypted:
        return decrypt_secret(route.api_key_encrypted)
    if route.api_key_env:
        if not api_key_env_allowed(route.api_key_env):
            raise CredentialsUnreadable(f"api_key_env {API_KEY_ENV_RULE}")
        return os.environ.get(route.api_key_env) or None
    return None
