"""Building blocks shared by every /v1 view: strict serializers, `limit`, keyset pages."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from rest_framework import exceptions, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from arkloop.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


# JSON types each kind of field accepts. DRF would coerce 5 into "5" or "5" into 5; we answer 422.
_JSON_TYPES: list[tuple[type, tuple[type, ...], str]] = [
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.CharField, (str,), "a string"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.DecimalField, (int, float), "a number"),
]


def _type_error(field: serializers.Field, value: Any) -> str | None:
    for kind, accepted, name in _JSON_TYPES:
        if isinstance(field, kind):
            is_bool = isinstance(value, bool) and bool not in accepted
            if value is not None and (is_bool or not isinstance(value, accepted)):
                return f"must be {name}"
            return None
    return None


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not declare and values of the wrong JSON type (422 naming them),
    instead of silently ignoring or coercing them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            errors = {name: ["unknown field"] for name in sorted(set(data) - set(self.fields))}
            for name, field in self.fields.items():
                message = _type_error(field, data[name]) if name in data else None
                if message:
                    errors[name] = [message]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def utf8_bytes_validator(*, max_bytes: int):
    """Content limits count UTF-8 bytes, not characters; blank-only text is rejected too."""

    def validate(value: str) -> None:
        if not value.strip():
            raise serializers.ValidationError("must not be empty or only whitespace")
        if len(value.encode("utf-8")) > max_bytes:
            raise serializers.ValidationError(f"must be at most {max_bytes} bytes of UTF-8")

    return validate


class JsonWhateverTheAccept(DefaultContentNegotiation):
    """The API speaks JSON only: an `Accept` no renderer matches (`text/html`, `application/xml`,
    bytes that are no media type) gets the view's first renderer, as DRF does for errors, instead
    of DRF's NotAcceptable, which no code of SPEC §1 covers (it was a 500)."""

    def select_renderer(self, request: Request, renderers: list[BaseRenderer],
                        format_suffix: str | None = None) -> tuple[BaseRenderer, str]:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            return renderers[0], renderers[0].media_type


def check_limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ValidationFailed({"limit": [f"must be an integer from 1 to {MAX_LIMIT}"]}) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed({"limit": [f"must be an integer from 1 to {MAX_LIMIT}"]})
    return limit


def keyset_after(queryset: QuerySet, anchor: Any) -> QuerySet:
    """The rows after `anchor` in (created_at desc, id desc) order: a page stable under inserts.

    The redundant `created_at <= anchor` bound lets an (…, created_at, id) index start the scan
    at the anchor; the OR alone would be a filter applied from the top of the index.
    """
    return queryset.filter(created_at__lte=anchor.created_at).filter(
        Q(created_at__lt=anchor.created_at) | Q(created_at=anchor.created_at, id__lt=anchor.id))


@dataclass(frozen=True)
class Page:
    items: list
    has_more: bool


def keyset_page(queryset: QuerySet, *, limit: int, before: Any = None) -> Page:
    """`limit` rows newest first (created_at desc, id desc), after the `before` row when given."""
    if before is not None:
        queryset = keyset_after(queryset, before)
    rows = list(queryset.order_by("-created_at", "-id")[: limit + 1])
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def next_page_link(request: Request, last_id: object) -> str:
    """`Link` header value naming the next page: this request with `before` = the page's last id."""
    query = request.query_params.copy()
    query["before"] = str(last_id)
    return f'<{request.build_absolute_uri(request.path)}?{query.urlencode()}>; rel="next"'

