"""Shapes of personas and routes (SPEC §5). Route output never holds a secret, encrypted or not."""
from rest_framework import serializers

from personas.models import Persona, Route


class PersonaSerializer(serializers.ModelSerializer):
    persona_id = serializers.CharField(source="public_id", read_only=True)
    org_id = serializers.CharField(read_only=True, allow_null=True)
    builtin = serializers.BooleanField(source="is_builtin", read_only=True)

    class Meta:
        model = Persona
        fields = ["persona_id", "key", "version", "title", "description", "route_id", "tools", "confirm_tools",
                  "limits", "max_output_tokens", "temperature", "stream_thinking", "org_id", "builtin",
                  "created_at"]


class PersonaDetailSerializer(PersonaSerializer):
    class Meta(PersonaSerializer.Meta):
        fields = [*PersonaSerializer.Meta.fields, "system_prompt"]


def _price() -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=False, normalize_output=True)


class RoutePricesSerializer(serializers.Serializer):
    """USD per million tokens."""

    input = _price()
    cached_input = _price()
    output = _price()


class RouteSerializer(serializers.ModelSerializer):
    """A route as the API shows it. `base_url` only with context `show_base_url` (org admins)."""

    route_id = serializers.CharField(source="id", read_only=True)
    base_url = serializers.CharField(read_only=True, required=False, help_text="shown to org admins only")
    org_id = serializers.CharField(read_only=True, allow_null=True)
    fallback_route_id = serializers.CharField(source="fallback_id", read_only=True, allow_null=True)
    prices = serializers.SerializerMethodField()
    credentials = serializers.ChoiceField(source="credential_source", choices=["encrypted", "env", "none"],
                                          read_only=True)

    class Meta:
        model = Route
        fields = ["id", "route_id", "provider", "model", "base_url", "prices", "priority", "fallback_route_id",
                  "credentials", "context_window", "org_id"]

    def to_representation(self, route: Route) -> dict:
        data = super().to_representation(route)
        if not self.context.get("show_base_url"):
            del data["base_url"]
        return data

    def get_prices(self, route: Route) -> dict:
        prices = {"input": route.price_input, "cached_input": route.price_cached_input, "output": route.price_output}
        return RoutePricesSerializer(prices).data
