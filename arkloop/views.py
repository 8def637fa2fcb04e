"""Endpoints of the tenancy core: access tokens, API keys, and the /v1 catch-all 404."""
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from arkloop import selectors, services
from arkloop.api import check_limit
from arkloop.authentication import access_token_issue
from arkloop.errors import NotFound, envelope
from arkloop.idempotency import secret_fields_mark
from arkloop.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    TokenRequestSerializer,
    TokenSerializer,
)


class AccessTokenView(APIView):
    """`POST /v1/auth/token {email, password, org?}` → a short-lived signed bearer token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=TokenRequestSerializer, responses=TokenSerializer)
    def post(self, request: Request) -> Response:
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = services.access_token_login(
            email=body.validated_data["email"], password=body.validated_data["password"],
            org_slug=body.validated_data.get("org"), address=request.META.get("REMOTE_ADDR", ""))
        response = Response({"access_token": access_token_issue(membership=membership), "token_type": "Bearer",
                             "expires_in": settings.ARKLOOP_ACCESS_TOKEN_TTL_SECONDS})
        return secret_fields_mark(response, "access_token")


class ApiKeyViewSet(viewsets.ViewSet):
    """`/v1/api-keys`: a member manages their own keys, an admin the org's."""

    lookup_value_regex = "[^/]+"

    @extend_schema(responses=ApiKeySerializer(many=True))
    def list(self, request: Request) -> Response:
        keys = selectors.api_key_list(principal=request.auth)[: check_limit(request)]
        return Response(ApiKeySerializer(keys, many=True).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request: Request) -> Response:
        body = ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key, plaintext = services.api_key_create(membership=request.auth.membership,
                                                 name=body.validated_data["name"])
        data = ApiKeyCreatedSerializer(key, context={"plaintext": plaintext}).data
        return secret_fields_mark(Response(data, status=status.HTTP_201_CREATED), "key")

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        key = selectors.access_api_key(principal=request.auth, key_id=pk)
        services.api_key_revoke(key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)


@csrf_exempt  # bearer-token API: no cookies, so no CSRF; a POST to a wrong path is a plain 404
def api_not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    """Any /v1 path that names no endpoint."""
    error = NotFound()
    return JsonResponse(envelope(error.code, f"no endpoint at {request.path}"), status=404)
