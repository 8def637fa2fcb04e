"""Reads of personas and routes: what an org may use, and resolving the ids a client sends.

Visibility: a persona or route with org null belongs to the platform and every org may use it;
one with an org is private to that org. Only active rows are usable. Where an org's own persona
has the same `key@version` as a platform one, the org's own wins (it shadows the platform one).
A bare `key` means the newest active version of that key among all the org may use (again the
org's own on a tie). Resolution failures are 422s naming the field; lookups by path are 404s.

What runs resolve (`persona_resolve`, `route_resolve`, `route_by_id`: every run create and every
run the runner loads) is memoized per process for ARKLOOP_PERSONA_CACHE_SECONDS (arkloop.memo): a
save or delete of a persona or route forgets it at once in the process that made it
(`personas_forget`), other processes see the change within those seconds. The API's own reads
(`GET /v1/personas…`) always ask the database.
"""
from __future__ import annotations

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from arkloop.errors import NotFound, ValidationFailed
from arkloop.memo import Memo
from personas.models import Persona, Route


def _memo_seconds() -> float:
    return settings.ARKLOOP_PERSONA_CACHE_SECONDS


# Shared by every thread of the process: the rows they hold are read, never changed.
_resolved_personas: Memo[Persona | None] = Memo("personas", seconds=_memo_seconds)
_resolved_routes: Memo[Route | None] = Memo("routes", seconds=_memo_seconds)


def personas_forget() -> None:
    """Forget the memoized personas and routes (call after changing either without a model save)."""
    _resolved_personas.forget()
    _resolved_routes.forget()


class PersonaNotFound(NotFound):
    code = "personas.not_found"
    message = "persona not found"


def _usable(queryset: QuerySet, org_id: object) -> QuerySet:
    return queryset.filter(Q(org__isnull=True) | Q(org_id=org_id), is_active=True)


def persona_list(*, org_id: object, limit: int | None = None) -> list[Persona]:
    """Every persona version the org may run, by key then newest version first.

    A platform persona shadowed by the org's own `key@version` is left out: it cannot be reached.
    """
    shadowing = Persona.objects.filter(org_id=org_id, key=OuterRef("key"), version=OuterRef("version"))
    personas = _usable(Persona.objects.all(), org_id).exclude(Q(org__isnull=True) & Exists(shadowing))
    personas = personas.order_by("key", "-version", "org_id")
    return list(personas[:limit] if limit else personas)


def _split_persona_id(persona_id: str) -> tuple[str, int | None] | None:
    """'key@3' → ('key', 3); 'key' → ('key', None); anything malformed → None."""
    key, at, version = persona_id.strip().partition("@")
    if not key:
        return None
    if not at:
        return key, None
    if not version.isdigit() or not version.isascii():
        return None
    return key, int(version)


def persona_find(*, org_id: object, persona_id: object) -> Persona | None:
    """The usable persona `key@version` (exact) or `key` (newest active version), or None."""
    parsed = _split_persona_id(persona_id) if isinstance(persona_id, str) else None
    if parsed is None:
        return None
    key, version = parsed
    candidates = _usable(Persona.objects.filter(key=key), org_id)
    if version is not None:
        candidates = candidates.filter(version=version)
    # On equal key@version the org's own row wins: NULL (platform) orgs sort last.
    return candidates.order_by("-version", F("org_id").asc(nulls_last=True)).first()


def persona_memoized(*, org_id: object, persona_id: object) -> Persona | None:
    """`persona_find`, memoized (see the module doc): the persona runs resolve."""
    if not isinstance(persona_id, str):
        return None
    return _resolved_personas.get((org_id, persona_id), lambda: persona_find(org_id=org_id, persona_id=persona_id))


def access_persona(*, org_id: object, persona_id: object) -> Persona:
    """The persona for `GET /v1/personas/{persona_id}`; personas.not_found when not usable here."""
    persona = persona_find(org_id=org_id, persona_id=persona_id)
    if persona is None:
        raise PersonaNotFound()
    return persona


def persona_resolve(*, org_id: object, persona_id: str | None) -> Persona:
    """The persona a run will execute: `key@version`, `key`, or (None/"") the default persona.

    Raises ValidationFailed naming `persona_id` when it is unknown, inactive, or another org's.
    """
    wanted = persona_id if persona_id not in (None, "") else settings.ARKLOOP_DEFAULT_PERSONA
    persona = persona_memoized(org_id=org_id, persona_id=wanted)
    if persona is None:
        shown = wanted if isinstance(wanted, str) else type(wanted).__name__
        raise ValidationFailed({"persona_id": [f"unknown persona {shown[:120]!r}"]})
    return persona


def route_list(*, org_id: object, limit: int | None = None) -> list[Route]:
    """The active routes the org may use: the platform's and its own, highest priority first."""
    routes = _usable(Route.objects.all(), org_id).order_by("-priority", "id")
    return list(routes[:limit] if limit else routes)


def route_find(*, org_id: object, route_id: object) -> Route | None:
    if not isinstance(route_id, str) or not route_id:
        return None
    return _usable(Route.objects.filter(pk=route_id), org_id).first()


def route_resolve(*, org_id: object, route_id: str | None, persona: Persona | None) -> Route:
    """The route a run will use: explicit `route_id`, else the persona's, else ARKLOOP_DEFAULT_ROUTE.

    Raises ValidationFailed naming `route_id` when that route is unknown, inactive or another org's.
    """
    wanted = route_id or (persona.route_id if persona is not None else "") or settings.ARKLOOP_DEFAULT_ROUTE
    route = (_resolved_routes.get(("usable", org_id, wanted), lambda: route_find(org_id=org_id, route_id=wanted))
             if isinstance(wanted, str) else None)
    if route is None:
        shown = wanted if isinstance(wanted, str) else type(wanted).__name__
        raise ValidationFailed({"route_id": [f"unknown route {shown[:120]!r}"]})
    return route


def route_by_id(route_id: str) -> Route | None:
    """The route with this id, active or not, whatever its org (the runner's lookup of a run's
    route and its fallbacks), memoized (see the module doc)."""
    return _resolved_routes.get(("id", route_id), lambda: Route.objects.filter(pk=route_id).first())
