"""The startup check every patch of a library's internals uses (runs/stream/transport.py,
arkloop/connection_close.py, arkloop/daphne_body_limit.py).

A patch relies on code it did not write: the methods it replaces, and those whose behaviour it
assumes. Each patch lists them with the sha256 of their source in the pinned release
(requirements.txt pins Twisted and Daphne); `changed()` names those whose source differs or
that are gone. A patch refuses to apply when any did — the process fails at startup, loudly,
instead of silently losing a security limit or a measured gain after an upgrade. A method
replaced by one of our patches is hashed as the original it wraps (`arkloop_original`), so a
process that applies a patch and checks again (tests import the app more than once) passes.

The Daphne patches are applied through `patch_daphne_once`.
"""
from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

_applied: set[str] = set()


def source_digest(function: Callable) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def mark(patch: Callable, original: Any) -> Callable:
    """Record on `patch` the function it replaces."""
    patch.arkloop_original = original
    return patch


def changed(expected: dict[str, str], owners: dict[str, Any]) -> list[str]:
    """The "Owner.attribute" names of `expected` whose source's sha256 is not the expected one."""
    found = []
    for name, digest in expected.items():
        owner, _, attribute = name.partition(".")
        function = getattr(owners[owner], attribute, None)
        function = getattr(function, "arkloop_original", function)
        try:
            matches = function is not None and source_digest(function) == digest
        except (OSError, TypeError):  # no source to read: not the code the patch was written for
            matches = False
        if not matches:
            found.append(name)
    return found


def refuse(patch: str, what: str, names: list[str]) -> None:
    """Raise the startup error of `patch` when `names` (what changed) is not empty."""
    if names:
        raise RuntimeError(f"{patch}: {what} changed ({', '.join(names)}); the patch was written for the "
                           "versions pinned in requirements.txt: review it before upgrading")


def patch_daphne_once(patch: str, apply: Callable[[type, ModuleType], None]) -> None:
    """Call `apply(WebRequest, twisted.web.http)` — which checks, then patches — once per process;
    a no-op when Daphne is not installed (another ASGI server serves the app; its answers are its own)."""
    if patch in _applied:
        return
    try:
        from daphne.http_protocol import WebRequest
        from twisted.web import http
    except ImportError:
        return
    apply(WebRequest, http)
    _applied.add(patch)
