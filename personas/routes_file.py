"""The routes file operators declare provider routes in (`ARKLOOP_ROUTES_FILE`, `sync_routes`).

Parsing only: `personas.services.routes_sync` applies the result. Error messages name the route
and the field, never a field's value, so an `api_key` cannot leak through them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_slug

from personas.credentials import API_KEY_ENV_RULE, api_key_env_allowed
from personas.models import Route

KNOWN = {"id", "provider", "model", "base_url", "api_key", "api_key_env", "prices", "priority",
         "fallback", "org", "active", "context_window"}
PRICE_KEYS = {"input": "price_input", "cached_input": "price_cached_input", "output": "price_output"}
MAX_PRICE = Decimal(1000000)
MAX_CONTEXT_WINDOW = 100_000_000


class RoutesFileError(ValueError):
    """The routes file cannot be applied; the message says where, never echoing a secret."""


@dataclass
class RouteSpec:
    id: str
    fields: dict[str, Any]  # model fields except org, fallback and credentials
    org_slug: str | None
    fallback_id: str | None
    api_key: str | None = field(default=None, repr=False)  # plaintext: keep out of repr and logs
    api_key_env: str | None = None


def _price(route_id: str, name: str, value: Any) -> Decimal:
    try:
        price = Decimal(str(value)) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    except InvalidOperation:
        price = None
    if price is None or not price.is_finite() or not Decimal(0) <= price < MAX_PRICE or price.as_tuple().exponent < -6:
        raise RoutesFileError(f"route {route_id}: prices.{name} must be a number ≥ 0 with at most 6 decimals")
    return price


def _prices(route_id: str, raw: Any) -> dict[str, Decimal]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict) or set(raw) - set(PRICE_KEYS):
        raise RoutesFileError(f"route {route_id}: prices must map {sorted(PRICE_KEYS)} to USD per million tokens")
    return {model_field: _price(route_id, key, raw.get(key, 0)) for key, model_field in PRICE_KEYS.items()}


def _text(route_id: str, raw: dict, name: str, *, required: bool = False) -> str:
    value = raw.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise RoutesFileError(f"route {route_id}: {name} must be a {'non-empty ' if required else ''}string")
    return value.strip()


def _check_route(raw: Any, index: int) -> str:
    if not isinstance(raw, dict):
        raise RoutesFileError(f"routes[{index}] must be a mapping")
    route_id = raw.get("id")
    try:
        validate_slug(route_id)
    except (ValidationError, TypeError):
        raise RoutesFileError(f"routes[{index}]: id must be a slug") from None
    unknown = sorted(set(raw) - KNOWN)
    if unknown:
        raise RoutesFileError(f"route {route_id}: unknown fields {unknown}")
    if raw.get("provider") not in Route.Provider.values:
        raise RoutesFileError(f"route {route_id}: provider must be one of {Route.Provider.values}")
    if "api_key" in raw and "api_key_env" in raw:
        raise RoutesFileError(f"route {route_id}: give api_key or api_key_env, not both")
    return route_id


def _parse_route(raw: Any, index: int) -> RouteSpec:
    route_id = _check_route(raw, index)
    base_url = _text(route_id, raw, "base_url")
    if base_url:
        try:
            URLValidator(schemes=["http", "https"])(base_url)
        except ValidationError:
            raise RoutesFileError(f"route {route_id}: base_url must be an http(s) URL") from None
    priority = raw.get("priority", 0)
    active = raw.get("active", True)
    if not isinstance(priority, int) or isinstance(priority, bool) or not isinstance(active, bool):
        raise RoutesFileError(f"route {route_id}: priority must be an integer and active true or false")
    window = raw.get("context_window", Route._meta.get_field("context_window").default)
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= MAX_CONTEXT_WINDOW:
        raise RoutesFileError(f"route {route_id}: context_window must be an integer of tokens, "
                              f"1 to {MAX_CONTEXT_WINDOW}")
    api_key_env = _text(route_id, raw, "api_key_env", required=True) if "api_key_env" in raw else None
    if api_key_env is not None and not api_key_env_allowed(api_key_env):
        raise RoutesFileError(f"route {route_id}: api_key_env {API_KEY_ENV_RULE}")
    fields = {"provider": raw["provider"], "model": _text(route_id, raw, "model", required=True),
              "base_url": base_url, "priority": priority, "is_active": active, "context_window": window,
              **_prices(route_id, raw.get("prices"))}
    return RouteSpec(id=route_id, fields=fields, org_slug=_text(route_id, raw, "org") or None,
                     fallback_id=_text(route_id, raw, "fallback") or None,
                     api_key=_text(route_id, raw, "api_key", required=True) if "api_key" in raw else None,
                     api_key_env=api_key_env)


def load_route_specs(path: Path) -> list[RouteSpec]:
    """Parse and validate a routes file: `routes:` followed by a list of routes (or the bare list)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        # Only the position: PyYAML's own message quotes the offending line, which may hold a key.
        mark = getattr(exc, "problem_mark", None)
        where = f" near line {mark.line + 1}" if mark is not None else ""
        raise RoutesFileError(f"{path}: cannot read YAML{where} ({type(exc).__name__})") from None
    routes = document.get("routes") if isinstance(document, dict) else document
    if not isinstance(routes, list):
        raise RoutesFileError(f"{path}: expected `routes:` followed by a list of routes")
    specs = [_parse_route(raw, index) for index, raw in enumerate(routes)]
    ids = [spec.id for spec in specs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RoutesFileError(f"{path}: routes declared twice: {duplicates}")
    return specs
