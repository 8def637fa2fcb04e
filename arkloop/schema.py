"""OpenAPI: declare our Bearer authentication so /v1/openapi.json documents it."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "arkloop.authentication.BearerAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An API key (`ak-` + 64 hex) or an access token from POST /v1/auth/token."}
