"""Runner stories run an in-process runner (its own DB threads), so the data must be committed."""
from __future__ import annotations

from decimal import Decimal

import pytest

from personas.models import Persona, Route


@pytest.fixture(autouse=True)
def fast_retries(settings):
    settings.ARKLOOP_LLM_RETRY_BASE_MS = 5


@pytest.fixture
def persona():
    """Make a platform persona: persona(key, tools=[…], …) → its `key@version`."""
    def make(key: str, **fields) -> str:
        fields.setdefault("route_id", "stub")
        fields.setdefault("tools", ["echo", "calculator", "current_time", "ask_user"])
        Persona.objects.create(key=key, version=1, system_prompt=f"You are {key}.", **fields)
        return f"{key}@1"
    return make


@pytest.fixture
def priced_stub():
    """A stub route with prices: input $2, cached input $0.5, output $8 per million tokens."""
    return Route.objects.create(id="priced-stub", provider="stub", model="stub-priced", price_input=Decimal("2"),
                                price_cached_input=Decimal("0.5"), price_output=Decimal("8"))
