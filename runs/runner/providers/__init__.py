"""Providers: one small interface (`base.Provider`), one implementation per `Route.provider`."""
from __future__ import annotations

from personas.models import Route
from runs.runner.providers.base import Provider, ProviderError


def provider_for(route: Route) -> Provider:
    """A fresh provider client for one call on `route`. Raises ProviderError for unusable routes."""
    from personas.credentials import CredentialsUnreadable, route_api_key

    if route.provider == Route.Provider.STUB:
        from runs.runner.providers.stub import StubProvider
        return StubProvider(model=route.model)
    try:
        api_key = route_api_key(route)
    except CredentialsUnreadable:
        raise ProviderError("provider.auth_failed", f"the API key of route {route.pk} cannot be decrypted") from None
    if route.provider == Route.Provider.OPENAI:
        from runs.runner.providers.openai_chat import OpenAIChatProvider
        return OpenAIChatProvider(model=route.model, base_url=route.base_url, api_key=api_key)
    if route.provider == Route.Provider.ANTHROPIC:
        from runs.runner.providers.anthropic_messages import AnthropicMessagesProvider
        return AnthropicMessagesProvider(model=route.model, base_url=route.base_url, api_key=api_key)
    raise ProviderError("provider.bad_request", f"unknown provider {route.provider!r}")
