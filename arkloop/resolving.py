"""Each request's URL resolved once, by the first layer that needs its view, for every layer after it.

Three layers of the ASGI stack (arkloop/asgi.py) need a request's view: the lean stream path
(is this the event stream?), the request threads (is the view synchronous?) and Django's
handler (which view to call). Each resolved the path itself, so a request walked the URL map
two or three times (12–29 µs each on this map; docs/performance.md).

`scope_match` resolves the path the first time a layer asks, and the layer passes the result
on in the scope it hands to the next app — a copy of the scope, as an ASGI middleware must
(Channels' URLRouter passes its `url_route` the same way). Django's handlers in this process
(`ResolvedOnce`: the pool's and `get_asgi_application`'s) take the request's match from there
in `resolve_request` instead of resolving again. They do so only for the path and URLconf
Django would resolve — `request.path_info` and the default URLconf — so a request whose
`path_info` or `urlconf` a middleware changed is resolved by Django as before. The match is
handed to Django where Django itself sets it (`request.resolver_match` in `resolve_request`),
not earlier: what middlewares see before the view (the request metrics' route label of an
answer given before resolution, for one) does not change.

`resolve_request` is a method of Django's `BaseHandler` that `ResolvedOnce` stands in for;
`check_resolve_request` refuses to start when its source is not the one of the pinned Django
(requirements.txt) this was written against.
"""
from __future__ import annotations

from dataclasses import dataclass

import django
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest
from django.urls import Resolver404, ResolverMatch, get_resolver

from arkloop import patching

SCOPE_KEY = "arkloop.url"

# sha256 of the source of Django 5.2's BaseHandler.resolve_request (what ResolvedOnce replaces).
_EXPECTED_SOURCES = {"BaseHandler.resolve_request": "ff178c3d63eebcd3e38110341593518dcd67d84cff94bbc7dd5aa323637cba6d"}


@dataclass(frozen=True, slots=True)
class UrlMatch:
    """The outcome of resolving `path_info` with the default URLconf: a match or Django's 404."""

    path_info: str
    match: ResolverMatch | None
    error: Resolver404 | None


def scope_match(scope: dict) -> tuple[dict, ResolverMatch | None]:
    """The scope to pass on (holding the outcome) and the view's match; None when no URL matches."""
    found = scope.get(SCOPE_KEY)
    if found is None:
        path_info = scope["path"].removeprefix(get_script_prefix(scope))  # as ASGIRequest computes it
        try:
            found = UrlMatch(path_info, get_resolver().resolve(path_info), None)
        except Resolver404 as error:
            found = UrlMatch(path_info, None, error)
        scope = {**scope, SCOPE_KEY: found}
    return scope, found.match


class ResolvedOnce:
    """Mixed into a Django handler: the request's match is the one its scope carries, if any."""

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        found: UrlMatch | None = getattr(request, "scope", {}).get(SCOPE_KEY)
        if found is None or found.path_info != request.path_info or hasattr(request, "urlconf"):
            return super().resolve_request(request)  # type: ignore[misc]
        if found.error is not None:
            raise found.error
        request.resolver_match = found.match
        return found.match


class _ASGIHandler(ResolvedOnce, ASGIHandler):
    pass


def check_resolve_request() -> None:
    """Fail loudly at startup when Django's `resolve_request` is not the one `ResolvedOnce` replaces."""
    patching.refuse("arkloop.resolving", "Django's BaseHandler.resolve_request",
                    patching.changed(_EXPECTED_SOURCES, {"BaseHandler": BaseHandler}))


def get_asgi_application() -> ASGIHandler:
    """Django's `get_asgi_application`, whose handler takes the match from the scope."""
    check_resolve_request()
    django.setup(set_prefix=False)
    return _ASGIHandler()
