"""Load the built-in personas again: `default@2` (personas/builtin/default-v2.yaml) allows `mcp__*`.

A database created from scratch has it already (personas.0002 loads every YAML file); one migrated
before MCP servers existed gets it here. Existing `key@version`s are never rewritten.
"""
from typing import ClassVar

from django.db import migrations


def load_builtins(apps, schema_editor) -> None:
    from personas.builtins import builtin_personas_sync, load_persona_specs

    builtin_personas_sync(persona_model=apps.get_model("personas", "Persona"), specs=load_persona_specs())


class Migration(migrations.Migration):
    dependencies: ClassVar = [("mcp_servers", "0001_initial"), ("personas", "0003_limits")]

    operations: ClassVar = [migrations.RunPython(load_builtins, migrations.RunPython.noop)]
