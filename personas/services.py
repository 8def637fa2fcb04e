"""Writes of personas and routes. Secrets go in through `route_set_api_key` and nowhere else."""
from __future__ import annotations

import logging

from personas.credentials import encrypt_secret
from personas.models import Route

log = logging.getLogger(__name__)


def route_set_api_key(*, route: Route, plaintext: str | None) -> Route:
    """Store `plaintext` encrypted on the route (None or "" removes the stored key) and save.

    A stored key takes precedence over `api_key_env`. Logs that the key changed, never the key.
    """
    route.api_key_encrypted = encrypt_secret(plaintext) if plaintext else ""
    route.save(update_fields=["api_key_encrypted", "updated_at"])
    log.info("route %s: stored API key %s", route.pk, "replaced" if plaintext else "removed")
    return route
