"""Webhook stories: alice (admin of acme) owns the webhooks, bob (member) may not touch them,
charlie (admin of globex) must not see them."""
from __future__ import annotations

from typing import Any

import pytest

from webhooks.models import Webhook


@pytest.fixture(autouse=True)
def private_urls_allowed(settings) -> None:
    """Receivers in these tests listen on 127.0.0.1 (one test turns this off on purpose)."""
    settings.ARKLOOP_ALLOW_PRIVATE_URLS = True


def create_webhook(actor, url: str = "https://hooks.example.com/arkloop", **body: Any) -> dict[str, Any]:
    response = actor.client.post("/v1/webhooks", {"url": url, **body})
    assert response.status_code == 201, response.content
    return response.json()


def stored(webhook: dict[str, Any]) -> Webhook:
    return Webhook.objects.get(pk=webhook["id"])
