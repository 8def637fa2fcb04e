"""The operator commands tail_run, usage_report and purge_events, run as an operator would."""
from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from runs.events import event_append
from runs.models import Run, RunEvent
from tests.console.builders import make_run, play_run
from tests.servers import ROOT, subprocess_env
from threads.models import Message


def run_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def sse_events(text: str) -> list[dict]:
    blocks = [block for block in text.split("\n\n") if block.strip()]
    events = []
    for block in blocks:
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        payload = json.loads(lines["data"])
        assert lines["id"] == str(payload["seq"]) and lines["event"] == payload["type"]
        events.append(payload)
    return events


# -- tail_run -------------------------------------------------------------------------------------

def test_tail_run_prints_a_finished_run_like_the_stream_and_exits(alice):
    run = make_run(org=alice.org, user=alice.user)
    play_run(run)
    out, _ = run_command("tail_run", str(run.pk))
    events = sse_events(out)
    assert [e["seq"] for e in events] == list(range(1, RunEvent.objects.filter(run=run).count() + 1))
    assert events[-1]["type"] == "run.completed" and events[0]["run_id"] == str(run.pk)
    assert events[0]["created_at"].endswith("Z") and events[0]["data"]["trace_id"] == run.trace_id


def test_tail_run_after_seq_and_text_format(alice):
    run = make_run(org=alice.org, user=alice.user)
    play_run(run, tool=True)
    out, _ = run_command("tail_run", str(run.pk), "--after-seq", "2", "--format", "text")
    lines = out.splitlines()
    assert lines[0].split()[0] == "3" and "tool.call" in lines[0] and 'calculator({"expression": "6*7"})' in lines[0]
    assert "run.completed" in lines[-1]


def test_tail_run_no_follow_stops_at_the_last_event_of_a_live_run(alice):
    run = make_run(org=alice.org, user=alice.user)
    event_append(run_id=run.pk, type="run.started", data={})
    out, _ = run_command("tail_run", str(run.pk), "--no-follow")
    assert [e["type"] for e in sse_events(out)] == ["run.started"]


def test_tail_run_of_a_finished_run_without_events_exits(alice):
    run = make_run(org=alice.org, user=alice.user, status="completed")  # its events were purged
    out, _ = run_command("tail_run", str(run.pk))
    assert out == ""


@pytest.mark.parametrize(("arg", "message"), [("nope", "not a run id (expected a UUID): 'nope'"),
                                              (str(uuid.UUID(int=7)), f"run {uuid.UUID(int=7)} not found")])
def test_tail_run_rejects_bad_and_unknown_ids(db, arg, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_command("tail_run", arg)


def test_tail_run_rejects_a_negative_seq(db):
    with pytest.raises(CommandError, match="--after-seq must be 0 or more"):
        run_command("tail_run", str(uuid.uuid4()), "--after-seq", "-1")


def test_tail_run_follows_a_live_run_until_its_terminal_event(transactional_db, database_url, alice):
    """A real process follows the run while this test appends events, and exits 0 at run.completed."""
    run = make_run(org=alice.org, user=alice.user)
    event_append(run_id=run.pk, type="run.started", data={})
    tail = subprocess.Popen([sys.executable, "manage.py", "tail_run", str(run.pk), "--interval", "0.05"],
                            cwd=ROOT, env=subprocess_env(database_url), stdout=subprocess.PIPE, text=True)
    try:
        replay = "".join(tail.stdout.readline() for _ in range(4))  # one SSE block: it is now following
        event_append(run_id=run.pk, type="message.delta", data={"content": "hi", "role": "assistant"})
        event_append(run_id=run.pk, type="run.completed", data={"usage": {}, "total_cost_usd": "0",
                                                                  "credits_used": 0, "message_id": None})
        returncode = tail.wait(timeout=60)
        rest = tail.stdout.read()
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
        tail.stdout.close()
    assert returncode == 0
    assert [e["type"] for e in sse_events(replay + rest)] == ["run.started", "message.delta", "run.completed"]


# -- usage_report ---------------------------------------------------------------------------------

@pytest.fixture
def usage_runs(alice, charlie):
    day = dt.datetime(2024, 3, 10, 12, tzinfo=dt.UTC)
    make_run(org=alice.org, user=alice.user, model="gpt-x", status="completed", cost="1.5",
             input_tokens=100, output_tokens=10, credits=1500, created_at=day)
    make_run(org=charlie.org, user=charlie.user, model="claude-y", status="completed", cost="0.25",
             input_tokens=7, output_tokens=3, credits=250, created_at=day + dt.timedelta(days=2))
    make_run(org=charlie.org, user=charlie.user, model="gpt-x", status="completed", cost="5",
             created_at=day + dt.timedelta(days=30))


def test_usage_report_csv_by_day_includes_empty_days_and_a_total(usage_runs):
    out, _ = run_command("usage_report", "--since", "2024-03-10", "--until", "2024-03-12", "--format", "csv")
    assert out.splitlines() == [
        "day,runs,input_tokens,output_tokens,cost_usd,credits",
        "2024-03-10,1,100,10,1.500000,1500",
        "2024-03-11,0,0,0,0.000000,0",
        "2024-03-12,1,7,3,0.250000,250",
        "total,2,107,13,1.750000,1750",
    ]


def test_usage_report_table_by_org(usage_runs):
    out, _ = run_command("usage_report", "--since", "2024-03-01", "--until", "2024-03-31", "--by", "org")
    lines = out.splitlines()
    assert lines[0].split() == ["org", "runs", "input_tokens", "output_tokens", "cost_usd", "credits"]
    assert lines[2].split() == ["acme", "1", "100", "10", "1.500000", "1500"]
    assert lines[3].split() == ["globex", "1", "7", "3", "0.250000", "250"]
    assert lines[-1].split() == ["total", "2", "107", "13", "1.750000", "1750"]
    assert len({len(line) for line in lines[:2]}) == 1  # aligned columns


def test_usage_report_by_model_until_defaults_to_today(usage_runs):
    out, _ = run_command("usage_report", "--since", "2024-03-01", "--by", "model", "--format", "csv")
    assert out.splitlines()[1:] == ["gpt-x,2,100,10,6.500000,1500", "claude-y,1,7,3,0.250000,250",
                                    "total,3,107,13,6.750000,1750"]


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "--since must be a date as YYYY-MM-DD, not 'yesterday'"),
    (["--since", "2024-03-10", "--until", "2024-13-01"], "--until must be a date as YYYY-MM-DD"),
    (["--since", "2024-03-10", "--until", "2024-03-01"], "--since 2024-03-10 is after --until 2024-03-01"),
])
def test_usage_report_rejects_bad_dates(db, args, message):
    with pytest.raises(CommandError, match=message):
        run_command("usage_report", *args)


# -- purge_events ---------------------------------------------------------------------------------

@pytest.fixture
def old_and_new_runs(alice):
    """An old finished run, a recent finished run, and an old run that is still active."""
    long_ago = timezone.now() - dt.timedelta(days=40)
    old = make_run(org=alice.org, user=alice.user)
    play_run(old)
    Run.objects.filter(pk=old.pk).update(created_at=long_ago, completed_at=long_ago)
    recent = make_run(org=alice.org, user=alice.user)
    play_run(recent)
    active = make_run(org=alice.org, user=alice.user, created_at=long_ago)
    event_append(run_id=active.pk, type="run.started", data={})
    return old, recent, active


def test_purge_events_deletes_old_finished_logs_in_batches_and_keeps_totals(old_and_new_runs):
    old, recent, active = old_and_new_runs
    old_count = RunEvent.objects.filter(run=old).count()
    recent_count = RunEvent.objects.filter(run=recent).count()

    out, err = run_command("purge_events", "--older-than", "30", "--batch-size", "3")

    assert out.splitlines()[0] == f"deleted {old_count} events of runs finished more than 30 days ago"
    assert err.splitlines()[0] == f"deleted 3/{old_count} events"
    assert err.splitlines()[-1] == f"deleted {old_count}/{old_count} events"
    assert not RunEvent.objects.filter(run=old).exists()
    assert RunEvent.objects.filter(run=recent).count() == recent_count
    assert RunEvent.objects.filter(run=active).count() == 1
    old.refresh_from_db()
    assert (old.status, old.total_input_tokens, str(old.total_cost_usd), old.credits_used) == \
        ("completed", 120, "0.00150000", 2)
    assert Message.objects.filter(run=old).exists()


def test_purge_events_dry_run_deletes_nothing(old_and_new_runs):
    old, _, _ = old_and_new_runs
    count = RunEvent.objects.filter(run=old).count()
    out, _ = run_command("purge_events", "--older-than", "30", "--dry-run")
    assert out.splitlines() == [f"would delete {count} events of runs finished more than 30 days ago",
                                "would delete 0 finished webhook deliveries older than 30 days"]
    assert RunEvent.objects.filter(run=old).count() == count


def test_purge_events_zero_days_spares_active_runs(old_and_new_runs):
    _, _, active = old_and_new_runs
    run_command("purge_events", "--older-than", "0")
    assert list(RunEvent.objects.values_list("run_id", flat=True)) == [active.pk]


@pytest.mark.parametrize(("args", "message"), [(["--older-than", "-1"], "--older-than must be 0 or more days"),
                                               (["--older-than", "5", "--batch-size", "0"],
                                                "--batch-size must be at least 1")])
def test_purge_events_rejects_bad_numbers(db, args, message):
    with pytest.raises(CommandError, match=message):
        run_command("purge_events", *args)


@pytest.mark.parametrize("command", ["tail_run", "usage_report", "purge_events"])
def test_every_command_explains_itself(command):
    """The command's own description and every option it adds (not Django's defaults) have help."""
    from django.core.management import load_command_class
    from django.core.management.base import BaseCommand

    loaded = load_command_class("runs", command)
    parser = loaded.create_parser("manage.py", command)
    django_defaults = {action.dest for action in BaseCommand().create_parser("manage.py", "x")._actions}
    own = [action for action in parser._actions if action.dest not in django_defaults]
    help_text = " ".join(parser.format_help().split())
    assert loaded.help.strip() and " ".join(loaded.help.split()) in help_text
    assert own, "the command adds no option or argument of its own"
    assert all(action.help and action.help.strip() for action in own), [a.dest for a in own if not a.help]
