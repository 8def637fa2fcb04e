"""Query filters of `GET /v1/runs` (django-filter); invalid values are 422s naming the parameter."""
from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import QueryDict
from django_filters import rest_framework as filters

from arkloop.errors import ValidationFailed
from runs.models import Run, RunStatus


class RunFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=RunStatus.choices)
    thread_id = filters.UUIDFilter(field_name="thread_id")
    persona_id = filters.CharFilter(method="filter_persona", max_length=200)
    model = filters.CharFilter(field_name="model", max_length=200)
    since = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Run
        fields: list[str] = []

    def filter_persona(self, queryset: QuerySet[Run], name: str, value: str) -> QuerySet[Run]:
        """`key@version` matches that version; a bare `key` matches every version of it."""
        if "@" in value:
            return queryset.filter(persona_id=value)
        return queryset.filter(Q(persona_id=value) | Q(persona_id__startswith=f"{value}@"))


def run_filter_apply(*, queryset: QuerySet[Run], params: QueryDict) -> QuerySet[Run]:
    """Narrow `queryset` by the query parameters; ValidationFailed for values that do not parse."""
    filterset = RunFilter(data=params, queryset=queryset)
    if not filterset.is_valid():
        raise ValidationFailed({name: [str(m) for m in messages] for name, messages in filterset.errors.items()})
    return filterset.qs
