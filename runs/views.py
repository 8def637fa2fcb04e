"""The Runs API (SPEC §4): validate → one service or selector → serialize.

`/v1/runs/{id}/events` (the SSE stream) lives in runs.stream.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from arkloop.api import check_limit, next_page_link
from runs import selectors, services
from runs.models import RunStatus
from runs.serializers import (
    OkSerializer,
    RunCancelSerializer,
    RunCreatedSerializer,
    RunCreateSerializer,
    RunInputSerializer,
    RunSerializer,
)
from threads.selectors import access_thread

LIMIT = OpenApiParameter("limit", int, description="1–200, default 50")
BEFORE = OpenApiParameter("before", str, description="a run id from the previous page (keyset cursor)")
FILTERS = [
    OpenApiParameter("status", str, enum=[s.value for s in RunStatus]),
    OpenApiParameter("thread_id", str),
    OpenApiParameter("persona_id", str, description="`key@version`, or `key` for every version"),
    OpenApiParameter("model", str),
    OpenApiParameter("since", str, description="RFC 3339; created at or after"),
    OpenApiParameter("until", str, description="RFC 3339; created before"),
]
OK = {"ok": True}


def _validated(serializer_class: type, request: Request) -> dict:
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return _present(body.validated_data)


def _present(validated: dict) -> dict:
    return {name: value for name, value in validated.items() if value not in (None, "")}


class RunViewSet(viewsets.ViewSet):
    """`/v1/runs`, `/v1/runs/{run_id}`, `…:cancel` (and `/cancel`), `…/input`."""

    @extend_schema(parameters=[LIMIT, BEFORE, *FILTERS], responses=RunSerializer(many=True))
    def list(self, request: Request) -> Response:
        page = selectors.run_list(principal=request.auth, limit=check_limit(request),
                                  before=request.query_params.get("before"), filters=request.query_params)
        headers = {"Link": next_page_link(request, page.runs[-1].pk)} if page.has_more else None
        return Response(RunSerializer(page.runs, many=True).data, headers=headers)

    @extend_schema(responses=RunSerializer)
    def retrieve(self, request: Request, run_id: str) -> Response:
        return Response(RunSerializer(selectors.access_run(principal=request.auth, run_id=run_id)).data)

    @extend_schema(request=RunCancelSerializer, responses=OkSerializer)
    def cancel(self, request: Request, run_id: str) -> Response:
        run = selectors.access_run(principal=request.auth, run_id=run_id)
        services.run_cancel(run=run, **_validated(RunCancelSerializer, request))
        return Response(OK)

    @extend_schema(request=RunInputSerializer, responses=OkSerializer)
    def input(self, request: Request, run_id: str) -> Response:
        run = selectors.access_run(principal=request.auth, run_id=run_id)
        services.run_input_provide(run=run, **_validated(RunInputSerializer, request))
        return Response(OK)


class ThreadRunViewSet(viewsets.ViewSet):
    """`/v1/threads/{thread_id}/runs` and `/v1/threads/{thread_id}:retry` (and `/retry`)."""

    @extend_schema(parameters=[LIMIT], responses=RunSerializer(many=True))
    def list(self, request: Request, thread_id: str) -> Response:
        thread = access_thread(principal=request.auth, thread_id=thread_id)
        runs = selectors.thread_run_list(principal=request.auth, thread=thread, limit=check_limit(request))
        return Response(RunSerializer(runs, many=True).data)

    @extend_schema(request=RunCreateSerializer, responses={201: RunCreatedSerializer})
    def create(self, request: Request, thread_id: str) -> Response:
        body = RunCreateSerializer(data=request.data)
        if not body.is_valid():
            access_thread(principal=request.auth, thread_id=thread_id)  # a thread not found is answered first
            raise ValidationError(body.errors)
        run = services.run_start(principal=request.auth, thread_id=thread_id, **_present(body.validated_data))
        return Response(RunCreatedSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RunCreateSerializer, responses={201: RunCreatedSerializer})
    def retry(self, request: Request, thread_id: str) -> Response:
        thread = access_thread(principal=request.auth, thread_id=thread_id)
        run = services.thread_retry(principal=request.auth, thread=thread, **_validated(RunCreateSerializer, request))
        return Response(RunCreatedSerializer(run).data, status=status.HTTP_201_CREATED)

