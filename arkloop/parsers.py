"""JSON bodies: objects only, bounded depth, clean text and bounded numbers — never a 500 on bad input.

Every client text field is checked here, once, for every endpoint: a string (or an object key)
of a JSON body, and (`check_query_text`, called by ApiErrorMiddleware) a query parameter
holding NUL or a lone surrogate (`"\\ud800"`) is a 422 naming the field (`arkloop.text` says why
such text cannot be stored). So is a number no field can hold: an integer outside 64 bits, or a
float that overflowed to infinity (`1e400`). NaN and Infinity literals are not JSON at all.
"""
import json
import math
from collections.abc import Iterable
from typing import Any

from django.http import QueryDict
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from arkloop.errors import ValidationFailed
from arkloop.text import text_clean, text_is_clean

MAX_DEPTH = 32
MAX_INT = 2**63 - 1
UNCLEAN_TEXT = "must not contain NUL or unpaired surrogate characters"


def _value_problem(value: Any) -> str | None:
    """Why a scalar cannot be accepted, or None."""
    if isinstance(value, str):
        return None if text_is_clean(value) else UNCLEAN_TEXT
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT:
        return "must be an integer between -2^63 and 2^63-1"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    return None


def _children(value: Any, path: str) -> Iterable[tuple[Any, str]]:
    def name(key: object) -> str:
        key = text_clean(str(key))  # the field is named even when its own name is the bad text
        return f"{path}.{key}" if path else key

    if isinstance(value, dict):
        for key, child in value.items():
            if not text_is_clean(key):
                raise ValidationFailed({name(key): [UNCLEAN_TEXT]})
            yield child, name(key)
    else:
        yield from ((child, name(index)) for index, child in enumerate(value))


def check_json(data: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Walk a parsed body once (iteratively): ParseError when nested deeper than `max_depth`,
    ValidationFailed naming the first field (`a.b.0`) whose text or number cannot be accepted."""
    stack = [(data, "", 1)]
    while stack:
        value, path, level = stack.pop()
        if isinstance(value, (dict, list)):
            if level > max_depth:
                raise ParseError(f"JSON nested deeper than {max_depth} levels")
            stack.extend((child, child_path, level + 1) for child, child_path in _children(value, path))
        elif (problem := _value_problem(value)) is not None:
            raise ValidationFailed({path or "body": [problem]})


def check_query_text(params: QueryDict) -> None:
    """The query string's names and values hold clean text, else 422 naming the parameter."""
    for name, values in params.lists():
        if not (text_is_clean(name) and all(text_is_clean(value) for value in values)):
            raise ValidationFailed({text_clean(name): [UNCLEAN_TEXT]})


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


class StrictJSONParser(JSONParser):
    """Parses a JSON object; malformed, non-object and too deeply nested bodies are ParseErrors,
    bad text or numbers in any field a 422 naming it."""

    def parse(self, stream, media_type=None, parser_context=None) -> dict:
        raw = stream.read() if stream is not None else b""
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_not_json)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"malformed JSON: {exc}") from None
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
        if not isinstance(data, dict):
            raise ParseError("the body must be a JSON object")
        check_json(data)
        return data
