"""Writes of personas and routes. Secrets go in through `route_set_api_key` and nowhere else."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from arkloop.models import Org
from personas.credentials import CredentialsUnreadable, decrypt_secret, encrypt_secret
from personas.models import Route
from personas.routes_file import RoutesFileError, RouteSpec
from personas.selectors import personas_forget

log = logging.getLogger(__name__)


def route_set_api_key(*, route: Route, plaintext: str | None) -> Route:
    """Store `plaintext` encrypted on the route (None or "" removes the stored key) and save.

    A stored key takes precedence over `api_key_env`. Logs that the key changed, never the key.
    """
    route.api_key_encrypted = encrypt_secret(plaintext) if plaintext else ""
    route.save(update_fields=["api_key_encrypted", "updated_at"])
    log.info("route %s: stored API key %s", route.pk, "replaced" if plaintext else "removed")
    return route


KEY_BOUND_FIELDS = frozenset({"base_url", "provider"})


def route_forget_key_if_moved(*, route: Route, changed: Iterable[str]) -> bool:
    """Clear the stored key (unsaved) when `changed` names base_url or provider; True if cleared.

    A key was given for one endpoint: pointing the route elsewhere must not send it there (a
    route's `base_url` aimed at one's own host would otherwise receive the stored key).
    """
    if not route.api_key_encrypted or not KEY_BOUND_FIELDS & set(changed):
        return False
    route.api_key_encrypted = ""
    log.info("route %s: stored API key removed (its base_url or provider changed)", route.pk)
    return True


def _stored_api_key(route: Route) -> str | None:
    """The stored key, or None when it cannot be read (then a new one simply replaces it)."""
    try:
        return decrypt_secret(route.api_key_encrypted) if route.api_key_encrypted else None
    except CredentialsUnreadable:
        return None


@dataclass(frozen=True)
class RouteOutcome:
    route_id: str
    status: str  # created | updated | unchanged
    changed: tuple[str, ...] = ()  # field names only, never values


def _credentials_changed(route: Route, spec: RouteSpec) -> bool:
    """Apply the file's credentials to `route` (unsaved); True when they differ from what was stored."""
    if spec.api_key is not None:
        stored = _stored_api_key(route)
        if stored == spec.api_key and not route.api_key_env:
            return False
        route.api_key_encrypted, route.api_key_env = encrypt_secret(spec.api_key), ""
        return True
    if spec.api_key_env is not None:
        changed = bool(route.api_key_encrypted) or route.api_key_env != spec.api_key_env
        route.api_key_encrypted, route.api_key_env = "", spec.api_key_env
        return changed
    return False  # neither given: credentials stay as they are (e.g. set in the admin)


def _route_declare(spec: RouteSpec, orgs: dict[str, Org]) -> RouteOutcome:
    route = Route.objects.filter(pk=spec.id).first()
    created = route is None
    route = route or Route(id=spec.id)
    wanted = {**spec.fields, "org_id": orgs[spec.org_slug].pk if spec.org_slug else None}
    changed = [name for name, value in wanted.items() if getattr(route, name) != value]
    for name, value in wanted.items():
        setattr(route, name, value)
    moved = route_forget_key_if_moved(route=route, changed=changed)
    if _credentials_changed(route, spec) or moved:
        changed.append("credentials")
    if created or changed:
        route.save()
    status = "created" if created else "updated" if changed else "unchanged"
    return RouteOutcome(spec.id, status, () if created else tuple(n.removesuffix("_id") for n in changed))


def _orgs_for(specs: list[RouteSpec]) -> dict[str, Org]:
    slugs = {spec.org_slug for spec in specs if spec.org_slug}
    orgs = {org.slug: org for org in Org.objects.filter(slug__in=slugs)}
    missing = sorted(slugs - set(orgs))
    if missing:
        raise RoutesFileError(f"unknown org slugs: {missing}")
    return orgs


def _fallbacks_link(specs: list[RouteSpec], outcomes: list[RouteOutcome]) -> list[RouteOutcome]:
    """Second pass, so a route may name a fallback declared after it."""
    linked = []
    for spec, outcome in zip(specs, outcomes, strict=True):
        if spec.fallback_id == spec.id or (spec.fallback_id and not Route.objects.filter(pk=spec.fallback_id).exists()):
            raise RoutesFileError(f"route {spec.id}: fallback must name another existing route")
        updated = Route.objects.filter(pk=spec.id).exclude(fallback_id=spec.fallback_id).update(
            fallback_id=spec.fallback_id)
        if updated:
            personas_forget()  # an UPDATE sends no post_save
        if updated and outcome.status != "created":
            outcome = RouteOutcome(spec.id, "updated", (*outcome.changed, "fallback"))
        linked.append(outcome)
    return linked


@transaction.atomic
def routes_sync(*, specs: list[RouteSpec]) -> list[RouteOutcome]:
    """Create or update the declared routes, all or nothing. Routes not in `specs` are left alone.

    The file is authoritative for every field it can hold; credentials change only when it gives
    `api_key` (stored encrypted) or `api_key_env`, or when it changes a route's base_url or
    provider (a stored key is then removed unless the file gives one). Logs route ids and changed
    field names only.
    """
    orgs = _orgs_for(specs)
    outcomes = _fallbacks_link(specs, [_route_declare(spec, orgs) for spec in specs])
    for outcome in outcomes:
        if outcome.status != "unchanged":
            log.info("route %s %s %s", outcome.route_id, outcome.status, ",".join(outcome.changed))
    return outcomes
