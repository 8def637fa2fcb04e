"""`/v1/webhooks` (org admins only): validate → one service or selector → serialize."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from arkloop.access import OrgAdminsOnly
from arkloop.api import Page, check_limit, next_page_link
from arkloop.idempotency import secret_fields_mark
from webhooks import selectors, services
from webhooks.serializers import (
    DeliverySerializer,
    WebhookCreateSerializer,
    WebhookPatchSerializer,
    WebhookSerializer,
    WebhookWithSecretSerializer,
)

LIMIT = OpenApiParameter("limit", int, description="1–200, default 50")
BEFORE = OpenApiParameter("before", str, description="an id from the previous page (keyset cursor)")
FORBIDDEN = {403: OpenApiResponse(description="the caller is not an org admin (auth.forbidden)")}


def _validated(serializer_class: type, request: Request) -> dict:
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


def _page_response(request: Request, page: Page, serializer_class: type) -> Response:
    headers = {"Link": next_page_link(request, page.items[-1].pk)} if page.has_more else None
    return Response(serializer_class(page.items, many=True).data, headers=headers)


def _with_secret(webhook, secret: str, status_code: int) -> Response:
    data = WebhookWithSecretSerializer(webhook, context={"secret": secret}).data
    return secret_fields_mark(Response(data, status=status_code), "secret")


class WebhookViewSet(viewsets.ViewSet):
    """Webhooks of the caller's org and their deliveries."""

    permission_classes = [IsAuthenticated, OrgAdminsOnly]

    @extend_schema(parameters=[LIMIT, BEFORE], responses={200: WebhookSerializer(many=True), **FORBIDDEN})
    def list(self, request: Request) -> Response:
        page = selectors.webhook_list(principal=request.auth, limit=check_limit(request),
                                      before=request.query_params.get("before"))
        return _page_response(request, page, WebhookSerializer)

    @extend_schema(request=WebhookCreateSerializer, responses={201: WebhookWithSecretSerializer, **FORBIDDEN})
    def create(self, request: Request) -> Response:
        body = _validated(WebhookCreateSerializer, request)
        webhook, secret = services.webhook_create(principal=request.auth, **body)
        return _with_secret(webhook, secret, status.HTTP_201_CREATED)

    @extend_schema(responses={200: WebhookSerializer, **FORBIDDEN})
    def retrieve(self, request: Request, webhook_id: str) -> Response:
        return Response(WebhookSerializer(selectors.access_webhook(principal=request.auth, webhook_id=webhook_id)).data)

    @extend_schema(request=WebhookPatchSerializer, responses={200: WebhookSerializer, **FORBIDDEN})
    def partial_update(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.access_webhook(principal=request.auth, webhook_id=webhook_id)
        webhook = services.webhook_update(webhook=webhook, changes=_validated(WebhookPatchSerializer, request))
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(responses={204: None, **FORBIDDEN})
    def destroy(self, request: Request, webhook_id: str) -> Response:
        services.webhook_delete(webhook=selectors.access_webhook(principal=request.auth, webhook_id=webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: WebhookWithSecretSerializer, **FORBIDDEN})
    def rotate_secret(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.access_webhook(principal=request.auth, webhook_id=webhook_id)
        webhook, secret = services.webhook_rotate_secret(webhook=webhook)
        return _with_secret(webhook, secret, status.HTTP_200_OK)

    @extend_schema(parameters=[LIMIT, BEFORE], responses={200: DeliverySerializer(many=True), **FORBIDDEN})
    def deliveries(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.access_webhook(principal=request.auth, webhook_id=webhook_id)
        page = selectors.delivery_list(webhook=webhook, limit=check_limit(request),
                                       before=request.query_params.get("before"))
        return _page_response(request, page, DeliverySerializer)

    @extend_schema(request=None, responses={202: DeliverySerializer, **FORBIDDEN})
    def redeliver(self, request: Request, webhook_id: str, delivery_id: str) -> Response:
        webhook = selectors.access_webhook(principal=request.auth, webhook_id=webhook_id)
        delivery = selectors.access_delivery(webhook=webhook, delivery_id=delivery_id)
        delivery = services.delivery_redeliver(delivery=delivery)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
