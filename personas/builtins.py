"""Built-in personas (YAML files in personas/builtin/) and the built-in `stub` route.

One loader serves the data migration and `manage.py sync_personas`, so both apply exactly the same
rules. A built-in is identified by `key@version`; its `source_hash` is the SHA-256 of its parsed
content, so a YAML edited without a new `version` is detected and reported instead of silently
changing what an existing `key@version` means (runs record `key@version` and retries reuse it).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug

from personas.tool_patterns import pattern_covered
from runs.limits import LimitsInvalid, limits_parse

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"

REQUIRED = {"key", "version", "title"}
OPTIONAL = {"description": "", "system_prompt": "", "route_id": "", "tools": [], "confirm_tools": [],
            "max_output_tokens": 1024, "temperature": None, "stream_thinking": False}
# Optional without a default, so adding them changed no existing file's `source_hash`.
# `max_iterations` (the older name) is read as `limits.max_turns`.
EXTRA = {"limits", "max_iterations"}

STUB_ROUTE = {"id": "stub", "provider": "stub", "model": "stub-echo-1", "base_url": "",
              "price_input": Decimal("1.00"), "price_cached_input": Decimal("0.10"),
              "price_output": Decimal("2.00"), "priority": 0}


class SpecError(ValueError):
    """A persona YAML file that cannot be loaded; the message names the file and the problem."""


@dataclass(frozen=True)
class PersonaSpec:
    path: Path
    fields: dict[str, Any]
    source_hash: str

    @property
    def persona_id(self) -> str:
        return f"{self.fields['key']}@{self.fields['version']}"

    @property
    def model_fields(self) -> dict[str, Any]:
        """The fields as Persona columns: `limits` with `max_iterations` folded in."""
        return {**self.fields, "limits": _spec_limits(self.fields)}


def _spec_limits(fields: dict[str, Any]) -> dict[str, Any]:
    """`limits` of a persona file, `max_iterations` read as `max_turns`. Raises SpecError."""
    limits = fields.get("limits", {})
    if not isinstance(limits, dict):
        raise SpecError("limits must be a mapping of limit names to numbers")
    alias = {"max_iterations": fields["max_iterations"]} if "max_iterations" in fields else {}
    try:
        return limits_parse({**alias, **limits})
    except LimitsInvalid as exc:
        raise SpecError(f"limits: {exc}") from None


@dataclass(frozen=True)
class SyncOutcome:
    persona_id: str
    path: Path
    status: str  # created | missing (not applied) | unchanged | edited_without_version_bump | conflict

    @property
    def applied(self) -> bool:
        return self.status == "created"


def _check_types(fields: dict[str, Any]) -> None:
    try:
        validate_slug(fields["key"])
    except (ValidationError, TypeError):
        raise SpecError("key must be a slug (letters, digits, - and _)") from None
    for name in ("version", "max_iterations", "max_output_tokens"):
        if name not in fields:
            continue
        if not isinstance(fields[name], int) or isinstance(fields[name], bool) or fields[name] < 1:
            raise SpecError(f"{name} must be a positive integer")
    _spec_limits(fields)
    for name in ("tools", "confirm_tools"):
        if not isinstance(fields[name], list) or not all(isinstance(t, str) and t for t in fields[name]):
            raise SpecError(f"{name} must be a list of tool names")
    if not all(pattern_covered(fields["tools"], entry) for entry in fields["confirm_tools"]):
        raise SpecError("confirm_tools must be a subset of tools")
    for name in ("title", "description", "system_prompt", "route_id"):
        if not isinstance(fields[name], str):
            raise SpecError(f"{name} must be a string")
    if fields["temperature"] is not None and not isinstance(fields["temperature"], (int, float)):
        raise SpecError("temperature must be a number or null")
    if not isinstance(fields["stream_thinking"], bool):
        raise SpecError("stream_thinking must be true or false")


def parse_persona_spec(path: Path) -> PersonaSpec:
    """One YAML file → a validated spec. Raises SpecError naming the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise SpecError("expected a mapping of persona fields")
        unknown, missing = set(raw) - REQUIRED - set(OPTIONAL) - EXTRA, REQUIRED - set(raw)
        if unknown or missing:
            raise SpecError(f"unknown fields {sorted(unknown)}, missing fields {sorted(missing)}")
        fields = {**OPTIONAL, **raw}
        _check_types(fields)
    except (yaml.YAMLError, OSError, SpecError) as exc:
        raise SpecError(f"{path.name}: {exc}") from None
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    return PersonaSpec(path=path, fields=fields, source_hash=digest)


def load_persona_specs(directory: Path = BUILTIN_DIR) -> list[PersonaSpec]:
    """Every `*.yaml` / `*.yml` in `directory`, validated; duplicate `key@version`s are an error."""
    specs = [parse_persona_spec(p) for p in sorted(directory.glob("*.y*ml"))]
    seen: dict[str, Path] = {}
    for spec in specs:
        if spec.persona_id in seen:
            raise SpecError(f"{spec.path.name}: {spec.persona_id} is also defined in {seen[spec.persona_id].name}")
        seen[spec.persona_id] = spec.path
    return specs


def _sync_one(spec: PersonaSpec, persona_model: Any, apply: bool) -> SyncOutcome:
    fields = spec.fields
    existing = persona_model.objects.filter(org__isnull=True, key=fields["key"], version=fields["version"]).first()
    if existing is None and not apply:
        return SyncOutcome(spec.persona_id, spec.path, "missing")
    if existing is None:
        known = {f.name for f in persona_model._meta.get_fields()}
        persona_model.objects.create(org=None, is_builtin=True, is_active=True, source_hash=spec.source_hash,
                                     **{k: v for k, v in spec.model_fields.items() if k in known})
        return SyncOutcome(spec.persona_id, spec.path, "created")
    if not existing.is_builtin:
        return SyncOutcome(spec.persona_id, spec.path, "conflict")
    if existing.source_hash != spec.source_hash:
        return SyncOutcome(spec.persona_id, spec.path, "edited_without_version_bump")
    return SyncOutcome(spec.persona_id, spec.path, "unchanged")


def builtin_personas_sync(*, persona_model: Any, specs: list[PersonaSpec], apply: bool = True) -> list[SyncOutcome]:
    """Create the built-in `key@version`s that do not exist yet; never rewrite an existing one.

    `persona_model` is the Persona class (the migration passes its historical model). An existing
    built-in whose YAML changed without a version bump is reported, not applied; a platform
    persona with the same `key@version` that is not a built-in is a conflict, left untouched.
    With `apply=False` nothing is written and absent ones are reported as "missing".
    """
    return [_sync_one(spec, persona_model, apply) for spec in specs]


def builtin_routes_ensure(*, route_model: Any) -> bool:
    """Create the built-in `stub` route when missing (never overwriting an edited one). True if created."""
    fields = {k: v for k, v in STUB_ROUTE.items() if k != "id"}
    _, created = route_model.objects.get_or_create(id=STUB_ROUTE["id"], defaults={"org": None, **fields})
    return created
