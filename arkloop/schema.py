"""OpenAPI: declare our Bearer authentication so /v1/openapi.json documents it."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "arkloop.authentication.BearerAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An API key (`ak-` + 64 hex) or an access token from POST /v1/auth/token."}


ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message", "details", "trace_id"],
    "properties": {
        "code": {"type": "string", "example": "runs.not_found"},
        "message": {"type": "string"},
        "details": {"type": "object", "additionalProperties": True},
        "trace_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    },
}
# What any /v1 operation may answer besides its success (SPEC §1).
COMMON_ERRORS = {
    "401": "missing, invalid or expired token",
    "404": "no such object, or not visible to the caller",
    "405": "method not allowed",
    "413": "body over ARKLOOP_MAX_BODY_BYTES",
    "422": "validation error",
    "500": "internal error",
}
BODY_ERRORS = {"409": "conflict (busy thread, not waiting, idempotency key reuse)",
               "429": "too many active runs in the org (runs.limit_exceeded) or failed logins (auth.throttled)"}


def add_error_responses(result: dict, generator, request, public) -> dict:
    """Postprocessing hook: document the envelope and the shared error statuses on every operation,
    and the bounds of the shared `limit` parameter."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    _drop_inherited_docstrings(result["components"]["schemas"])
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    schemas = result["components"]["schemas"]
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _close_request_bodies(operation, schemas)
            errors = {**COMMON_ERRORS, **(BODY_ERRORS if method == "post" else {})}
            for status, description in errors.items():
                operation["responses"].setdefault(status, {"description": description, "content": error_ref})
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):  # e.g. a view's own 403: the envelope too
                    response.setdefault("content", error_ref)
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "limit" and parameter.get("in") == "query":
                    parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
    return result


def _close_request_bodies(operation: dict, schemas: dict) -> None:
    """Request bodies reject unknown fields (StrictSerializer): say so with additionalProperties."""
    for media in operation.get("requestBody", {}).get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        name = ref.rsplit("/", 1)[-1]
        if name in schemas:
            schemas[name]["additionalProperties"] = False


def _drop_inherited_docstrings(schemas: dict) -> None:
    """Serializers without a docstring inherit StrictSerializer's, which says nothing about them."""
    from arkloop.api import StrictSerializer

    inherited = " ".join((StrictSerializer.__doc__ or "").split())
    for schema in schemas.values():
        if " ".join(schema.get("description", "").split()) == inherited:
            del schema["description"]
