"""A conversation of any length runs: the request holds the newest messages that fit the route's
context window, `run.context.truncated` says how many were left out, and the runner reads no more
of the thread than it can send."""
from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from personas.models import Route
from runs.models import Run
from runs.runner import context
from runs.runner.context import conversation_load
from runs.runner.providers.base import Entry
from runs.runner.window import entry_tokens, window_fit
from tests.runner.helpers import answer, assert_gapless, of_type, run, run_once, start
from tests.runner.processes import RunnerProcess, wait_until
from threads.models import Message, Thread

pytestmark = pytest.mark.django_db(transaction=True)
FILLER = "word " * 80  # 400 characters: about 100 estimated tokens, 80 words for the stub's count


def long_thread(actor, messages: int) -> str:
    """A thread of `messages` visible messages (alternating user and assistant), oldest first."""
    thread = Thread.objects.create(org=actor.org, created_by=actor.user, title="long")
    Message.objects.bulk_create([Message(thread=thread, role="user" if i % 2 == 0 else "assistant",
                                         content=f"{i} {FILLER}") for i in range(messages)], batch_size=1000)
    return str(thread.pk)


def test_a_thread_of_5000_messages_runs_with_the_newest_that_fit(alice, database_url):
    thread_id = long_thread(alice, 4999)
    _, run_id = start(alice, "and the last question", thread_id=thread_id)
    with RunnerProcess(database_url):
        wait_until(lambda: run(run_id).status in ("completed", "failed"), what="the run to finish", timeout=60)
    assert answer(run_id).content == "You said: and the last question"
    dropped = of_type(run_id, "run.context.truncated")[0]["dropped_messages"]
    assert 3000 < dropped < 5000  # 128,000 tokens hold about 1,200 of these messages
    sent_words = of_type(run_id, "llm.turn.completed")[0]["usage"]["input_tokens"]  # the stub counts words sent
    assert sent_words < (5000 - dropped) * 82 + 200
    assert_gapless(run_id)


def test_a_small_window_keeps_the_newest_messages_and_says_how_many_it_left_out(alice):
    Route.objects.create(id="small", provider="stub", model="stub-small", context_window=2000)
    thread_id = long_thread(alice, 300)
    _, run_id = start(alice, "the question", thread_id=thread_id, route_id="small")
    run_once()
    truncated = of_type(run_id, "run.context.truncated")
    assert len(truncated) == 1 and 280 < truncated[0]["dropped_messages"] < 301
    assert answer(run_id).content == "You said: the question"


def test_the_runner_reads_only_what_fits_whatever_the_thread_length(alice):
    thread_id = long_thread(alice, 3000)
    _, run_id = start(alice, "last", thread_id=thread_id)
    the_run = Run.objects.get(pk=run_id)
    with CaptureQueriesContext(connection) as queries:
        entries, older = conversation_load(the_run, max_tokens=1000)
    assert entries[-1].content == "last" and len(entries) == 10  # 9 fillers of ~105 tokens, and the question
    assert older == 3001 - len(entries)
    assert entries[0].content.startswith("2991 ")  # the newest, oldest first
    assert len(queries) <= 3  # sizes (one page), the count of older ones, the contents of those kept


def test_fitting_never_starts_with_a_tool_outcome_and_always_keeps_the_newest():
    entries = [Entry("user", "q"), Entry("assistant", "", tool_calls=[]), Entry("tool", "x" * 400),
               Entry("tool", "y" * 40), Entry("user", "z" * 4000)]
    assert window_fit(entries, budget=60) == ([entries[-1]], 4)
    kept, dropped = window_fit(entries, budget=1200)
    assert kept[0].role != "tool" and kept[-1] is entries[-1]


# Texts whose length in characters is not their length in bytes, or sits either side of a
# multiple of CHARS_PER_TOKEN: empty, combining accents, CJK, emoji outside the BMP, a ZWJ sequence.
ODD_TEXTS = ["", "a", "abc", "abcd", "abcde", "ééé", "éééé", "e\u0301" * 3, "日本語のテキストです",
             "🙂" * 7, "👨\u200d👩\u200d👧", "\r\n\t ", "x" * 401]


def deciding_budgets(entries: list[Entry]) -> list[int]:
    """Every budget where the window's choice changes: each sum of the newest entries' tokens, and one less."""
    sums = itertools.accumulate(entry_tokens(entry) for entry in reversed(entries))
    return sorted({budget for total in sums for budget in (total - 1, total)})


@pytest.mark.parametrize("page", [context.PAGE, 3])
def test_the_database_sizes_odd_texts_as_entry_tokens_does(alice, monkeypatch, page):
    """The window chosen from sizes the database computes — on PostgreSQL the first page's SQL sum,
    on either database the paged reading's length() — is the one window_fit chooses from the texts,
    at every budget where the choice changes (page 3: the paged reading, over several pages).
    A thread's messages carry no tool calls, so the database never has to size one."""
    monkeypatch.setattr(context, "PAGE", page)
    thread = Thread.objects.create(org=alice.org, created_by=alice.user, title="odd")
    for index, text in enumerate(ODD_TEXTS):
        Message.objects.create(thread=thread, role="user" if index % 2 == 0 else "assistant", content=text)
    _, run_id = start(alice, "é🙂?", thread_id=str(thread.pk))
    the_run = Run.objects.get(pk=run_id)
    entries = [Entry(role=role, content=content) for role, content
               in Message.objects.filter(thread=thread).order_by("created_at", "id").values_list("role", "content")]
    assert len(entries) == len(ODD_TEXTS) + 1
    for budget in deciding_budgets(entries):
        assert conversation_load(the_run, max_tokens=budget) == window_fit(entries, budget), budget
