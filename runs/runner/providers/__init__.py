"""Providers: one small interface (`base.Provider`), one implementation per `Route.provider`.

The SDKs are imported here, once, when the runner starts: importing them lazily on the first
call would stall the event loop (and every run on it) for a second or two.
"""
from __future__ import annotations

from personas.credentials import CredentialsUnreadable, route_api_key
from personas.models import Route
from runs.runner.providers.anthropic_messages import AnthropicMessagesProvider
from runs.runner.providers.base import Provider, ProviderError
from runs.runner.providers.openai_chat import OpenAIChatProvider
from runs.runner.providers.stub import StubProvider


def provider_for(route: Route) -> Provider:
    """A fresh provider client for one call on `route`. Raises ProviderError for unusable routes."""
    if route.provider == Route.Provider.STUB:
        return StubProvider(model=route.model)
    try:
        api_key = route_api_key(route)
    except CredentialsUnreadable as exc:
        raise ProviderError("provider.auth_failed", f"route {route.pk}: {exc}") from None
    if route.provider == Route.Provider.OPENAI:
        return OpenAIChatProvider(model=route.model, base_url=route.base_url, api_key=api_key)
    if route.provider == Route.Provider.ANTHROPIC:
        return AnthropicMessagesProvider(model=route.model, base_url=route.base_url, api_key=api_key)
    raise ProviderError("provider.bad_request", f"unknown provider {route.provider!r}")
