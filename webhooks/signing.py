"""Webhook secrets and signatures (Standard Webhooks).

A secret is `whsec_` + base64 of 32 random bytes, stored encrypted (the route-key cipher of
personas.credentials). A delivery is signed with the `standardwebhooks` package: one `v1,<base64
HMAC-SHA256>` of `<webhook-id>.<webhook-timestamp>.<body>` per valid secret — the current one,
and for 24 h after a rotation the one it replaced — separated by spaces, so receivers that still
hold the old secret keep verifying while they switch.
"""
from __future__ import annotations

import base64
import os
from datetime import datetime, timedelta

from standardwebhooks import Webhook as StandardWebhook

from personas.credentials import decrypt_secret

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
PREVIOUS_SECRET_TTL = timedelta(hours=24)


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


def signing_secrets(*, current: str, previous: str, previous_expires_at: datetime | None,
                    now: datetime) -> list[str]:
    """The plaintext secrets that sign now, from their stored ciphertexts (CredentialsUnreadable if
    ARKLOOP_ENCRYPTION_KEY no longer decrypts them)."""
    secrets = [decrypt_secret(current)]
    if previous and previous_expires_at is not None and previous_expires_at > now:
        secrets.append(decrypt_secret(previous))
    return secrets


def signature(*, message_id: str, timestamp: datetime, body: str, secrets: list[str]) -> str:
    """The `webhook-signature` header value."""
    return " ".join(StandardWebhook(secret).sign(msg_id=message_id, timestamp=timestamp, data=body)
                    for secret in secrets)
