"""Personas (what an agent is) and provider routes (which model it talks to, at what price)."""
import uuid
from decimal import Decimal

from django.db import models
from django.db.models import Q

from arkloop.models import Org


class Persona(models.Model):
    """A versioned agent definition. org null = available to every org (built-ins live in YAML)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(Org, null=True, blank=True, on_delete=models.CASCADE, related_name="personas")
    key = models.SlugField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    title = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")
    system_prompt = models.TextField(blank=True, default="")
    route_id = models.CharField(max_length=100, blank=True, default="", help_text="default route (slug)")
    tools = models.JSONField(default=list, blank=True)
    confirm_tools = models.JSONField(default=list, blank=True)
    # The persona's run limits (runs.limits: max_turns, max_tool_calls, …); a run may only lower them.
    limits = models.JSONField(default=dict, blank=True)
    # The provider's `max_tokens` per call (a run's `max_output_tokens` limit counts the whole run).
    max_output_tokens = models.PositiveIntegerField(default=1024)
    temperature = models.FloatField(null=True, blank=True)
    stream_thinking = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    is_builtin = models.BooleanField(default=False, editable=False)
    source_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "key", "version"], condition=Q(org__isnull=False),
                                    name="persona_org_key_version_unique"),
            models.UniqueConstraint(fields=["key", "version"], condition=Q(org__isnull=True),
                                    name="persona_platform_key_version_unique"),
        ]
        ordering = ["key", "-version"]

    def __str__(self) -> str:
        return self.public_id

    @property
    def public_id(self) -> str:
        return f"{self.key}@{self.version}"


class Route(models.Model):
    """A provider route: provider + model + credentials + prices (USD per million tokens)."""

    class Provider(models.TextChoices):
        STUB = "stub"
        OPENAI = "openai"
        ANTHROPIC = "anthropic"

    id = models.SlugField(max_length=100, primary_key=True)
    org = models.ForeignKey(Org, null=True, blank=True, on_delete=models.CASCADE, related_name="routes")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    model = models.CharField(max_length=200)
    base_url = models.URLField(max_length=500, blank=True, default="")
    # Credentials: either a Fernet token (never the plaintext) or the name of an environment variable.
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    api_key_env = models.CharField(max_length=100, blank=True, default="")
    price_input = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    price_cached_input = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    price_output = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    # Tokens the model reads and writes per call: the request holds what fits (runs.runner.window).
    context_window = models.PositiveIntegerField(default=128_000)
    priority = models.IntegerField(default=0)
    fallback = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "id"]

    def __str__(self) -> str:
        return f"{self.id} ({self.provider}:{self.model})"

    def __repr__(self) -> str:
        return f"<Route {self.id} {self.provider}:{self.model}>"

    @property
    def credential_source(self) -> str:
        """Where the key comes from — "encrypted", "env" or "none" — without revealing it."""
        if self.api_key_encrypted:
            return "encrypted"
        return "env" if self.api_key_env else "none"
