"""`manage.py sync_personas`: YAML built-ins in, idempotent, and never silently rewritten."""
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from personas.builtins import load_persona_specs
from personas.models import Persona
from personas.selectors import persona_resolve

WRITER = """\
key: writer
version: {version}
title: Writer
description: {description}
tools: [echo]
route_id: stub
"""


def sync(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sync_personas", *args, stdout=out, stderr=err, no_color=True)
    return out.getvalue(), err.getvalue()


def write_writer(folder: Path, *, version: int = 1, description: str = "writes") -> None:
    (folder / "writer.yaml").write_text(WRITER.format(version=version, description=description))


def test_the_migration_loaded_every_builtin_yaml_with_its_hash(db):
    for spec in load_persona_specs():
        persona = Persona.objects.get(org__isnull=True, key=spec.fields["key"], version=spec.fields["version"])
        assert persona.is_builtin and persona.is_active and persona.source_hash == spec.source_hash


def test_syncing_the_shipped_builtins_again_changes_nothing(db):
    before = list(Persona.objects.values_list("id", "updated_at"))
    out, err = sync()
    assert "unchanged  default@1" in out and "unchanged  default@2" in out and "unchanged  careful@1" in out
    assert err == ""
    assert list(Persona.objects.values_list("id", "updated_at")) == before


def test_a_new_yaml_is_created_once(db, tmp_path):
    write_writer(tmp_path)
    out, _ = sync("--dir", str(tmp_path))
    assert "created    writer@1" in out and "1 built-in persona(s): 1 created" in out
    out, _ = sync("--dir", str(tmp_path))
    assert "unchanged  writer@1" in out
    assert Persona.objects.filter(key="writer").count() == 1


def test_a_yaml_edited_without_a_version_bump_is_reported_and_not_applied(db, tmp_path):
    write_writer(tmp_path, description="writes")
    sync("--dir", str(tmp_path))
    write_writer(tmp_path, description="writes poems now")
    out, err = sync("--dir", str(tmp_path))
    assert "edited_without_version_bump writer@1" in err and "NOT APPLIED" in err
    assert "1 edited without version bump" in out
    assert Persona.objects.get(key="writer").description == "writes"


def test_a_version_bump_adds_a_version_and_keeps_the_old_one_runnable(alice, tmp_path):
    write_writer(tmp_path, version=1)
    sync("--dir", str(tmp_path))
    write_writer(tmp_path, version=2, description="better")
    out, _ = sync("--dir", str(tmp_path))
    assert "created    writer@2" in out
    assert persona_resolve(org_id=alice.org.id, persona_id="writer").description == "better"
    assert persona_resolve(org_id=alice.org.id, persona_id="writer@1").description == "writes"


def test_check_writes_nothing_and_fails_when_out_of_sync(db, tmp_path):
    write_writer(tmp_path)
    with pytest.raises(CommandError, match="not in sync"):
        sync("--dir", str(tmp_path), "--check")
    assert not Persona.objects.filter(key="writer").exists()
    sync("--dir", str(tmp_path))
    out, _ = sync("--dir", str(tmp_path), "--check")
    assert "1 unchanged" in out


def test_a_hand_made_platform_persona_with_the_same_id_is_a_conflict_left_alone(db, tmp_path):
    Persona.objects.create(key="writer", version=1, title="by hand")
    write_writer(tmp_path)
    _, err = sync("--dir", str(tmp_path))
    assert "conflict   writer@1" in err
    assert Persona.objects.get(key="writer").title == "by hand"


@pytest.mark.parametrize("content, problem", [
    ("key: [unclosed", "writer.yaml"),
    ("- a list", "expected a mapping"),
    ("key: writer\nversion: 1\ntitle: W\ncolour: red\n", "unknown fields ['colour']"),
    ("key: writer\ntitle: W\n", "missing fields ['version']"),
    ("key: writer\nversion: 0\ntitle: W\n", "version must be a positive integer"),
    ("key: Writer Bot\nversion: 1\ntitle: W\n", "key must be a slug"),
    ("key: writer\nversion: 1\ntitle: W\ntools: [echo]\nconfirm_tools: [calculator]\n", "subset of tools"),
    ("key: writer\nversion: 1\ntitle: W\nlimits: {max_turns: -1}\n", "max_turns: must not be negative"),
    ("key: writer\nversion: 1\ntitle: W\nlimits: {max_laps: 3}\n", "max_laps: unknown limit"),
    ("key: writer\nversion: 1\ntitle: W\nlimits: [3]\n", "limits must be a mapping"),
    ("key: writer\nversion: 1\ntitle: W\nmax_iterations: 4\nlimits: {max_turns: 5}\n", "contradicts max_turns"),
])
def test_an_invalid_yaml_is_refused_naming_the_file_and_the_problem(db, tmp_path, content, problem):
    (tmp_path / "writer.yaml").write_text(content)
    with pytest.raises(CommandError, match="writer.yaml") as excinfo:
        sync("--dir", str(tmp_path))
    assert problem in str(excinfo.value)
    assert not Persona.objects.filter(key="writer").exists()


def test_the_same_key_at_version_in_two_files_is_refused(db, tmp_path):
    write_writer(tmp_path)
    (tmp_path / "writer-copy.yaml").write_text(WRITER.format(version=1, description="copy"))
    with pytest.raises(CommandError, match="also defined in"):
        sync("--dir", str(tmp_path))


def test_help_explains_the_version_rule(capsys):
    with pytest.raises(SystemExit):
        call_command("sync_personas", "--help")
    help_text = " ".join(capsys.readouterr().out.split())
    assert "without a new `version` is reported and not applied" in help_text and "--check" in help_text


def test_limits_and_the_older_max_iterations_are_the_personas_run_limits(db, tmp_path):
    (tmp_path / "writer.yaml").write_text(WRITER.format(version=1, description="w")
                                          + "max_iterations: 4\nlimits: {max_tool_calls: 3, max_cost_usd: 0.25}\n")
    sync("--dir", str(tmp_path))
    assert Persona.objects.get(key="writer").limits == {"max_turns": 4, "max_tool_calls": 3, "max_cost_usd": 0.25}


def test_the_builtins_keep_their_max_iterations_as_max_turns(db):
    assert Persona.objects.get(key="default", version=1).limits == {"max_turns": 8}
