"""`/v1/threads` and `/v1/threads/{id}/messages`: validate → one service or selector → serialize."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from arkloop.api import check_limit
from threads import selectors, services
from threads.serializers import (
    MessageSerializer,
    MessageWriteSerializer,
    ThreadPatchSerializer,
    ThreadSerializer,
    ThreadWriteSerializer,
)

LIMIT = OpenApiParameter("limit", int, description="1–200, default 50")


class ThreadViewSet(viewsets.ViewSet):
    lookup_value_regex = "[^/:]+"

    @extend_schema(parameters=[LIMIT, OpenApiParameter("before", str, description="a thread id (keyset cursor)")],
                   responses=ThreadSerializer(many=True))
    def list(self, request: Request) -> Response:
        threads = selectors.thread_list(principal=request.auth, limit=check_limit(request),
                                        before=request.query_params.get("before"))
        return Response(ThreadSerializer(threads, many=True).data)

    @extend_schema(request=ThreadWriteSerializer, responses={201: ThreadSerializer})
    def create(self, request: Request) -> Response:
        body = ThreadWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        thread = services.thread_create(principal=request.auth, title=body.validated_data["title"])
        thread.active_run_id = None
        return Response(ThreadSerializer(thread).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=ThreadSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(ThreadSerializer(selectors.access_thread(principal=request.auth, thread_id=pk)).data)

    @extend_schema(request=ThreadPatchSerializer, responses=ThreadSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        thread = selectors.access_thread(principal=request.auth, thread_id=pk)
        body = ThreadPatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if "title" in body.validated_data:
            services.thread_update(thread=thread, title=body.validated_data["title"])
        return Response(ThreadSerializer(thread).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.thread_delete(thread=selectors.access_thread(principal=request.auth, thread_id=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[LIMIT], responses=MessageSerializer(many=True))
    @action(detail=True, methods=["get"])
    def messages(self, request: Request, pk: str) -> Response:
        thread = selectors.access_thread(principal=request.auth, thread_id=pk)
        messages = selectors.message_list(thread=thread, limit=check_limit(request))
        return Response(MessageSerializer(messages, many=True).data)

    # A method of its own, not a branch on request.method: DRF answers HEAD with the GET handler,
    # and a branch that took every non-GET for a POST let a HEAD with a body post a message.
    @extend_schema(request=MessageWriteSerializer, responses={201: MessageSerializer})
    @messages.mapping.post
    def message_post(self, request: Request, pk: str) -> Response:
        body = MessageWriteSerializer(data=request.data)
        if not body.is_valid():
            selectors.access_thread(principal=request.auth, thread_id=pk)  # a thread not found is answered first
            raise ValidationError(body.errors)
        message = services.message_post(principal=request.auth, thread_id=pk, content=body.validated_data["content"])
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)
