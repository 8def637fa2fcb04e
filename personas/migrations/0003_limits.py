"""Persona `limits` (run limits; the old `max_iterations` becomes `limits.max_turns`) and route `context_window`."""
from typing import ClassVar

from django.db import migrations, models


def max_iterations_to_limits(apps, schema_editor) -> None:
    Persona = apps.get_model("personas", "Persona")
    for persona in Persona.objects.all():
        persona.limits = {"max_turns": persona.max_iterations}
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
