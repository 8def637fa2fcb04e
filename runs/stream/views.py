"""`GET /v1/runs/{run_id}/events`: a Django async view streaming Server-Sent Events.

Everything that can fail (authentication, parameters, visibility) is checked before the response
starts, so failures are ordinary JSON envelopes raised as ApiError and rendered by
ApiErrorMiddleware. The body is `runs.stream.follow.event_stream`.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import NamedTuple

from django.http import HttpRequest, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from arkloop.authentication import Principal, principal_from_header
from arkloop.errors import ApiError, ValidationFailed
from runs.stream.follow import DirectWrites, event_stream
from runs.stream.limits import SlotHeldStream, stream_slots
from runs.stream.selectors import access_run_for_stream, stream_db

MAX_CURSOR_DIGITS = 18  # every such number fits a seq (a 64-bit integer)
_DIGITS = re.compile(r"[0-9]+")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class MethodNotAllowed(ApiError):
    status = 405
    code = "http.method_not_allowed"
    message = "only GET is allowed here"


def check_seq(value: str, *, field: str) -> int:
    """A non-negative integer cursor of at most 18 digits, or 422 naming `field`."""
    value = value.strip()
    if not _DIGITS.fullmatch(value):
        raise ValidationFailed({field: ["must be an integer ≥ 0"]})
    if len(value) > MAX_CURSOR_DIGITS:
        raise ValidationFailed({field: [f"must be at most {MAX_CURSOR_DIGITS} digits"]})
    return int(value)


def check_cursor(request: HttpRequest) -> int:
    """The seq to resume after: Last-Event-ID when present (browser reconnects), else after_seq."""
    last_event_id = request.headers.get("Last-Event-ID", "").strip()
    if last_event_id:
        return check_seq(last_event_id, field="Last-Event-ID")
    return check_seq(request.GET.get("after_seq", "0"), field="after_seq")


def check_follow(request: HttpRequest) -> bool:
    value = request.GET.get("follow", "true").strip().lower()
    if value not in _BOOLEANS:
        raise ValidationFailed({"follow": ["must be true or false"]})
    return _BOOLEANS[value]


async def open_run_events(request: HttpRequest, run_id: str) -> SlotHeldStream:
    """Every check of the stream (method, token, parameters, visibility, the open-stream cap),
    then its body, which holds a stream slot until it is closed.

    Raises ApiError (rendered as the JSON envelope) before anything is streamed.
    """
    if request.method != "GET":
        raise MethodNotAllowed(headers={"Allow": "GET"})
    opening = await stream_db.read(check_opening, request=request, run_id=run_id)
    slot = stream_slots.acquire(opening.principal.credential)
    direct = DirectWrites()
    body = event_stream(run_id=str(opening.run_pk), after_seq=opening.after_seq, follow=opening.follow,
                        run_finished=opening.run_finished, direct=direct)
    return SlotHeldStream(body, slot, direct=direct)


class Opening(NamedTuple):
    """What a stream starts from once its checks passed."""

    principal: Principal
    after_seq: int
    follow: bool
    run_pk: uuid.UUID
    run_finished: bool


def check_opening(request: HttpRequest, run_id: str) -> Opening:
    """The token, the parameters and the run's visibility, in the order their errors are answered.

    One call on `stream_db` (the token may need the database, the run does): a stream opens with a
    single hop to its threads, a memoized principal or not.
    """
    principal = principal_from_header(request.headers.get("Authorization", "").encode("latin-1"))
    after_seq, follow = check_cursor(request), check_follow(request)
    pk, finished = access_run_for_stream(principal=principal, run_id=run_id)
    return Opening(principal, after_seq, follow, pk, finished)


def sse_response(body: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    # The stream ends at the terminal event: end the connection too (arkloop.connection_close),
    # so clients that read until EOF finish, and no idle keep-alive socket lingers.
    response["Connection"] = "close"
    return response


@csrf_exempt  # authenticated by its Authorization header only, never a cookie (as the DRF views)
async def run_events(request: HttpRequest, run_id: str) -> StreamingHttpResponse:
    """The view. Under Daphne, successful GETs take runs.stream.asgi's lean path instead; other
    methods get the 405 envelope from here (not Django's CSRF page)."""
    return sse_response(await open_run_events(request, run_id))
