"""`/v1/mcp-servers` (org admins only): validate → one service or selector → serialize."""
from __future__ import annotations

from asgiref.sync import async_to_sync
from django.db import connection
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from arkloop.access import OrgAdminsOnly
from arkloop.api import check_limit, next_page_link
from mcp_servers import selectors, services
from mcp_servers.serializers import McpServerSerializer, McpServerWriteSerializer, McpToolSerializer

LIMIT = OpenApiParameter("limit", int, description="1–200, default 50")
BEFORE = OpenApiParameter("before", str, description="an MCP server id from the previous page (keyset cursor)")
FORBIDDEN = OpenApiResponse(description="org admins only (auth.forbidden)")
UNAVAILABLE = OpenApiResponse(description="the server could not be reached within its timeout (mcp.unavailable)")


class McpServerViewSet(viewsets.ViewSet):
    permission_classes = [IsAuthenticated, OrgAdminsOnly]
    lookup_value_regex = "[^/:]+"

    @extend_schema(parameters=[LIMIT, BEFORE], responses={200: McpServerSerializer(many=True), 403: FORBIDDEN})
    def list(self, request: Request) -> Response:
        page = selectors.mcp_server_list(principal=request.auth, limit=check_limit(request),
                                         before=request.query_params.get("before"))
        headers = {"Link": next_page_link(request, page.items[-1].pk)} if page.has_more else None
        return Response(McpServerSerializer(page.items, many=True).data, headers=headers)

    @extend_schema(request=McpServerWriteSerializer, responses={201: McpServerSerializer, 403: FORBIDDEN})
    def create(self, request: Request) -> Response:
        body = McpServerWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        server = services.mcp_server_create(org_id=request.auth.org_id, **body.validated_data)
        return Response(McpServerSerializer(server).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: McpServerSerializer, 403: FORBIDDEN})
    def retrieve(self, request: Request, pk: str) -> Response:
        server = selectors.access_mcp_server(principal=request.auth, server_id=pk)
        return Response(McpServerSerializer(server).data)

    @extend_schema(request=McpServerWriteSerializer, responses={200: McpServerSerializer, 403: FORBIDDEN})
    def partial_update(self, request: Request, pk: str) -> Response:
        server = selectors.access_mcp_server(principal=request.auth, server_id=pk)
        body = McpServerWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        services.mcp_server_update(server=server, changes=body.validated_data)
        return Response(McpServerSerializer(server).data)

    @extend_schema(responses={204: None, 403: FORBIDDEN})
    def destroy(self, request: Request, pk: str) -> Response:
        services.mcp_server_delete(server=selectors.access_mcp_server(principal=request.auth, server_id=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: McpToolSerializer(many=True), 403: FORBIDDEN, 502: UNAVAILABLE})
    @action(detail=True, methods=["get"])
    def tools(self, request: Request, pk: str) -> Response:
        """The tools the server offers now, fetched from it (not cached)."""
        server = selectors.access_mcp_server(principal=request.auth, server_id=pk)
        config = selectors.mcp_server_config(server=server)
        if not connection.in_atomic_block:
            # The wait below can last the server's timeout (up to 300 s): give the pooled database
            # connection back first, so slow servers cannot exhaust the pool for everyone else.
            connection.close()
        tools = async_to_sync(selectors.mcp_server_tools)(config=config)
        return Response(McpToolSerializer([tool.as_dict() for tool in tools], many=True).data)
