"""MCP tool servers an org registers: where its runs find tools beyond the built-in ones."""
import uuid

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from arkloop.models import Org

NAME_PATTERN = r"^[a-z0-9_-]{1,32}\Z"
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS, DEFAULT_TIMEOUT_SECONDS = 1, 300, 30


class McpServer(models.Model):
    class Approval(models.TextChoices):
        UNLESS_READ_ONLY = "unless_read_only"  # tools without the readOnlyHint annotation wait for approval
        ALWAYS = "always"
        NEVER = "never"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="mcp_servers")
    name = models.CharField(max_length=32, validators=[RegexValidator(NAME_PATTERN)],
                            help_text="a-z, 0-9, _ and -; the model sees tools as mcp__<name>__<tool>")
    url = models.CharField(max_length=2048, help_text="the streamable HTTP endpoint, e.g. https://host/mcp")
    # Header values are a secret: one Fernet token of the JSON object {name: value}; the names apart,
    # so they can be shown without decrypting anything.
    header_names = models.JSONField(default=list, blank=True, editable=False)
    headers_encrypted = models.TextField(blank=True, default="", editable=False)
    allowed_tools = models.JSONField(null=True, blank=True, help_text="null: every tool of the server")
    require_approval = models.CharField(max_length=16, choices=Approval.choices, default=Approval.UNLESS_READ_ONLY)
    timeout_seconds = models.PositiveSmallIntegerField(
        default=DEFAULT_TIMEOUT_SECONDS,
        validators=[MinValueValidator(MIN_TIMEOUT_SECONDS), MaxValueValidator(MAX_TIMEOUT_SECONDS)])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="mcp_server_org_name_unique"),
            models.CheckConstraint(condition=Q(timeout_seconds__gte=MIN_TIMEOUT_SECONDS,
                                               timeout_seconds__lte=MAX_TIMEOUT_SECONDS),
                                   name="mcp_server_timeout_range"),
        ]
        indexes = [models.Index(fields=["org", "-created_at", "-id"], name="mcp_server_org_created")]
        verbose_name = "MCP server"

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<McpServer {self.name} {self.url[:80]}>"
