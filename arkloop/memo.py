"""Per-process memos of rows that are read on every request or run and rarely change.

An API key's principal, the personas and routes runs resolve: looking them up again for every
request was a large share of the API's and the runner's CPU (docs/performance.md). A `Memo`
keeps each answer for a few seconds (a setting), so:

- a change made in this process (a save or delete of a memoized model, or a service that
  changes such rows with an UPDATE) forgets every answer of the memo at once, and again when
  its transaction commits — a lookup that read the old rows while the change was in flight
  cannot store them afterwards;
- a change made by another process (another Daphne, a runner, a management command, the
  database by hand) is seen within the memo's seconds: that is the bound, stated in
  docs/performance.md and docs/operations.md.

Answers are shared by every thread of the process: callers must treat them as read-only.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from django.db import transaction
from django.db.models import Model
from django.db.models.signals import post_delete, post_save

V = TypeVar("V")
_memos: list[Memo] = []


class Memo(Generic[V]):
    """Answers of `load()` by key, each kept for `seconds()` seconds (0: not kept at all)."""

    def __init__(self, name: str, *, seconds: Callable[[], float], max_entries: int = 10_000) -> None:
        self.name = name
        self._seconds = seconds
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._generations = itertools.count()
        self._generation = next(self._generations)
        _memos.append(self)

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        """The answer kept for `key`, else `load()` (kept unless it raised or a change came meanwhile)."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        generation, seconds = self._generation, self._seconds()
        value = load()
        if seconds > 0 and generation == self._generation:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()  # a flood of distinct keys: start over rather than grow
            self._entries[key] = (time.monotonic() + seconds, value)
        return value

    def forget(self) -> None:
        """Forget every answer, now and when the caller's transaction commits (at once outside one)."""
        self._drop()
        transaction.on_commit(self._drop)

    def _drop(self) -> None:
        self._generation = next(self._generations)
        self._entries.clear()


def memos_forget_on_change(forget: Callable[[], None], models: Iterable[type[Model]]) -> None:
    """Call `forget` after every save or delete of `models` in this process, so a change made here
    is seen at once. Wired once per memo by its app's `AppConfig.ready()`. An UPDATE or a bulk
    write sends no signal: the service that makes one calls `forget` itself."""

    def receiver(**kwargs: object) -> None:
        forget()

    uid = f"memo-forget:{forget.__module__}.{forget.__qualname__}"  # per sender: ready() may run twice
    for model in models:
        for signal in (post_save, post_delete):
            signal.connect(receiver, sender=model, weak=False, dispatch_uid=uid)


def memos_forget_all() -> None:
    """Forget every memo's answers (tests, which empty the database behind the memos' back)."""
    for memo in _memos:
        memo._drop()
