"""Text that PostgreSQL (and UTF-8) cannot hold: NUL and lone surrogates — one rule for the service.

PostgreSQL refuses U+0000 in `text` and `\\u0000` in `jsonb`, and a lone surrogate (U+D800–U+DFFF
without its pair) cannot be encoded as UTF-8 at all; SQLite stores both, and they break whoever
reads them later (SSE frames, admin pages). So:

- text a client sends is *rejected* (422 naming the field): `text_is_clean` says whether it may be
  accepted;
- text that reaches the service from elsewhere (model output, tool and MCP results, provider
  errors) is *cleaned*: `text_clean` / `json_clean` replace each such code point by U+FFFD, so it
  never fails, stalls or restarts a run.
"""
from __future__ import annotations

import math
import re
from typing import Any

REPLACEMENT = "\ufffd"
_BAD = re.compile("[\x00\ud800-\udfff]")


def text_is_clean(value: str) -> bool:
    """True when `value` holds no NUL and no lone surrogate."""
    return _BAD.search(value) is None


def text_clean(value: str) -> str:
    """`value` with every NUL and lone surrogate replaced by U+FFFD (the same object when clean)."""
    return value if _BAD.search(value) is None else _BAD.sub(REPLACEMENT, value)


def json_clean(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings, numbers) with every string — keys too — cleaned,
    and NaN and ±Infinity (which Python's json reads and writes, but JSON, PostgreSQL's jsonb and
    browsers refuse) replaced by null.

    Returns `value` itself when nothing needed cleaning, so the common case allocates nothing.
    """
    if isinstance(value, str):
        return text_clean(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        items = [(json_clean(k), json_clean(v)) for k, v in value.items()]
        if all(k2 is k and v2 is v for (k, v), (k2, v2) in zip(value.items(), items, strict=True)):
            return value
        return dict(items)
    if isinstance(value, list):
        cleaned = [json_clean(v) for v in value]
        return value if all(a is b for a, b in zip(value, cleaned, strict=True)) else cleaned
    return value
