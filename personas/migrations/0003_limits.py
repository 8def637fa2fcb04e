"""Persona `limits` (run limits; the old `max_iterations` becomes `limits.max_turns`) and route `context_window`."""
from typing import ClassVar

from django.db import migrations, models


def max_iterations_to_limits(apps, schema_editor) -> None:
    """`max_iterations` becomes `limits.max_turns`; an unedited built-in gets its YAML's own `limits`
    (0002 stored the column's default 8 for a file that names no `max_iterations`, like default@2)."""
    from personas.builtins import load_persona_specs

    specs = {(s.fields["key"], s.fields["version"], s.source_hash): s for s in load_persona_specs()}
    Persona = apps.get_model("personas", "Persona")
    for persona in Persona.objects.all():
        spec = specs.get((persona.key, persona.version, persona.source_hash)) if persona.is_builtin else None
        persona.limits = spec.model_fields["limits"] if spec else {"max_turns": persona.max_iterations}
        persona.save(update_fields=["limits"])


def limits_to_max_iterations(apps, schema_editor) -> None:
    Persona = apps.get_model("personas", "Persona")
    for persona in Persona.objects.all():
        persona.max_iterations = (persona.limits or {}).get("max_turns") or 8
        persona.save(update_fields=["max_iterations"])


class Migration(migrations.Migration):
    dependencies: ClassVar = [("personas", "0002_builtins")]

    operations: ClassVar = [
        migrations.AddField(model_name="persona", name="limits", field=models.JSONField(blank=True, default=dict)),
        migrations.RunPython(max_iterations_to_limits, limits_to_max_iterations),
        migrations.RemoveField(model_name="persona", name="max_iterations"),
        migrations.AddField(model_name="route", name="context_window",
                            field=models.PositiveIntegerField(default=128000)),
    ]
