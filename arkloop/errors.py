"""The one error envelope: `{code, message, details, trace_id}` for every failure under /v1.

Services raise `ApiError` subclasses carrying a code; `api_exception_handler` renders them and
DRF's own exceptions; `ApiErrorMiddleware` (arkloop.middleware) covers Django's 404/405/500.
"""
from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from arkloop.tracing import current_trace_id

log = logging.getLogger(__name__)
BEARER_CHALLENGE = 'Bearer realm="api"'


class ApiError(Exception):
    """A failure with a stable code, an HTTP status and a human message."""

    status = 400
    code = "bad_request"
    message = "bad request"

    def __init__(self, code: str | None = None, message: str | None = None, *,
                 details: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        self.code = code or self.code
        self.message = message or self.message
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)


class NotFound(ApiError):
    status = 404
    code = "http.not_found"
    message = "not found"


class Conflict(ApiError):
    status = 409
    code = "conflict"
    message = "conflict"


class Forbidden(ApiError):
    status = 403
    code = "auth.forbidden"
    message = "this role may not do this"


class Unauthorized(ApiError):
    status = 401
    code = "auth.invalid_token"
    message = "invalid token"


class ValidationFailed(ApiError):
    status = 422
    code = "validation.error"
    message = "the request is not valid"

    def __init__(self, fields: dict[str, list[str]], message: str | None = None) -> None:
        super().__init__(message=message, details={"fields": fields})


class Unprocessable(ApiError):
    status = 422


class TooManyRequests(ApiError):
    status = 429
    code = "runs.limit_exceeded"
    message = "too many requests"


class BodyTooLarge(ApiError):
    status = 413
    code = "validation.body_too_large"
    message = "the request body is too large"


def envelope(code: str, message: str, details: dict | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or {}, "trace_id": current_trace_id()}


def error_response(error: ApiError) -> JsonResponse:
    """A plain Django response for errors raised outside DRF (middleware, ASGI views)."""
    response = JsonResponse(envelope(error.code, error.message, error.details), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    if error.status == 401:
        response.setdefault("WWW-Authenticate", BEARER_CHALLENGE)
    return response


def _flatten_fields(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail → {"field" or "field.sub": [messages]}."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and not prefix:
                name = "non_field_errors"
            out.update(_flatten_fields(value, name))
        return out
    if isinstance(detail, list) and detail and all(not isinstance(d, (dict, list)) for d in detail):
        return {prefix or "non_field_errors": [str(d) for d in detail]}
    if isinstance(detail, list):
        out = {}
        for index, value in enumerate(detail):
            out.update(_flatten_fields(value, f"{prefix}.{index}" if prefix else str(index)))
        return out
    return {prefix or "non_field_errors": [str(detail)]}


def _translate(exc: Exception) -> ApiError | None:
    """Map DRF and Django exceptions onto the codes of SPEC §1."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, drf.ValidationError):
        return ValidationFailed(_flatten_fields(exc.detail))
    if isinstance(exc, drf.ParseError):
        return ValidationFailed({"body": [str(exc.detail)]}, message="the body is not valid JSON")
    if isinstance(exc, drf.UnsupportedMediaType):
        return ApiError("validation.error", "send a JSON body (Content-Type: application/json)",
                        details={"fields": {"body": [str(exc.detail)]}})
    if isinstance(exc, drf.NotAuthenticated):
        return Unauthorized("auth.missing_token", "an Authorization: Bearer token is required")
    if isinstance(exc, drf.AuthenticationFailed):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "auth.invalid_token"
        return Unauthorized(code if code.startswith("auth.") else "auth.invalid_token", str(exc.detail))
    if isinstance(exc, (drf.PermissionDenied, PermissionDenied)):
        return Forbidden()
    if isinstance(exc, (drf.NotFound, Http404)):
        return NotFound()
    if isinstance(exc, drf.MethodNotAllowed):
        return ApiError("http.method_not_allowed", str(exc.detail))
    if isinstance(exc, RequestDataTooBig):
        return BodyTooLarge()
    if isinstance(exc, drf.Throttled):
        return TooManyRequests("http.throttled", str(exc.detail))
    return None


_STATUS_OF_DRF = {drf.MethodNotAllowed: 405, drf.UnsupportedMediaType: 415}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error of a view becomes the envelope."""
    error = _translate(exc)
    if error is None:
        return None  # not ours: ApiErrorMiddleware logs it and answers 500 internal.error
    status = next((s for cls, s in _STATUS_OF_DRF.items() if isinstance(exc, cls)), error.status)
    headers = dict(error.headers)
    if status == 401:
        headers.setdefault("WWW-Authenticate", BEARER_CHALLENGE)
    return Response(envelope(error.code, error.message, error.details), status=status, headers=headers)
