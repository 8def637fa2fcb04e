"""Load the built-in `stub` route and the built-in personas of personas/builtin/*.yaml.

Uses the same loader as `manage.py sync_personas`; later YAML versions arrive through that command.
"""
from typing import ClassVar

from django.db import migrations


def load_builtins(apps, schema_editor) -> None:
    from personas.builtins import (
        builtin_personas_sync,
        builtin_routes_ensure,
        load_persona_specs,
    )

    builtin_routes_ensure(route_model=apps.get_model("personas", "Route"))
    builtin_personas_sync(persona_model=apps.get_model("personas", "Persona"), specs=load_persona_specs())


class Migration(migrations.Migration):
    dependencies: ClassVar = [("personas", "0001_initial")]

    operations: ClassVar = [migrations.RunPython(load_builtins, migrations.RunPython.noop)]
