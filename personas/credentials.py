"""Provider credentials at rest: Fernet tokens keyed from settings, or an environment variable.

`ARKLOOP_ENCRYPTION_KEY` is one Fernet key, or several separated by commas (the first encrypts,
all decrypt: rotate by prepending a new key, then re-save the routes). When it is unset, a key is
derived from SECRET_KEY, so changing SECRET_KEY makes stored route keys unreadable.
A plaintext key only ever lives in memory: it is never logged, rendered or put in an event.
"""
from __future__ import annotations

import base64
import hashlib
import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from personas.models import Route

_DERIVATION_LABEL = b"arkloop.route-credentials.v1:"


class CredentialsUnreadable(Exception):
    """A stored key cannot be decrypted with the configured encryption key (it was rotated away)."""


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
    Raises CredentialsUnreadable (whose message holds no secret) when decryption fails.
    """
    if route.api_key_encrypted:
        return decrypt_secret(route.api_key_encrypted)
    if route.api_key_env:
        return os.environ.get(route.api_key_env) or None
    return None
