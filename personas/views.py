"""`/v1/personas` and `/v1/routes`: what the caller's org may use. Read-only."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from arkloop.api import check_limit
from personas import selectors
from personas.serializers import PersonaDetailSerializer, PersonaSerializer, RouteSerializer

LIMIT = OpenApiParameter("limit", int, description="1–200, default 50")


class PersonaViewSet(viewsets.ViewSet):
    lookup_url_kwarg = "persona_id"
    lookup_value_regex = "[^/]+"

    @extend_schema(parameters=[LIMIT], responses=PersonaSerializer(many=True))
    def list(self, request: Request) -> Response:
        personas = selectors.persona_list(org_id=request.auth.org_id, limit=check_limit(request))
        return Response(PersonaSerializer(personas, many=True).data)

    @extend_schema(parameters=[OpenApiParameter("persona_id", str, OpenApiParameter.PATH,
                                                description="`key@version`, or `key` for its newest active version")],
                   responses=PersonaDetailSerializer)
    def retrieve(self, request: Request, persona_id: str) -> Response:
        persona = selectors.access_persona(org_id=request.auth.org_id, persona_id=persona_id)
        return Response(PersonaDetailSerializer(persona).data)


class RouteViewSet(viewsets.ViewSet):
    @extend_schema(parameters=[LIMIT], responses=RouteSerializer(many=True))
    def list(self, request: Request) -> Response:
        routes = selectors.route_list(org_id=request.auth.org_id, limit=check_limit(request))
        context = {"show_base_url": request.auth.is_admin}
        return Response(RouteSerializer(routes, many=True, context=context).data)
