"""Makers for personas and routes private to one org or added to the platform."""
from decimal import Decimal

from personas.models import Persona, Route


def make_persona(*, key: str, version: int = 1, org=None, active: bool = True, **fields) -> Persona:
    return Persona.objects.create(key=key, version=version, org=org, is_active=active,
                                  title=fields.pop("title", f"{key} v{version}"), tools=["echo"], **fields)


def make_route(*, route_id: str, org=None, active: bool = True, **fields) -> Route:
    defaults = {"provider": "openai", "model": "gpt-test", "base_url": "http://127.0.0.1:9/v1",
                "price_input": Decimal("3.00"), "price_cached_input": Decimal("0.30"), "price_output": Decimal("15")}
    return Route.objects.create(id=route_id, org=org, is_active=active, **{**defaults, **fields})
