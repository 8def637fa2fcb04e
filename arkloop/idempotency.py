"""`Idempotency-Key` on every POST under /v1 (SPEC §1): one execution per principal and key.

The first request with a key inserts an `IdempotencyRecord` *before* the view runs; the unique
constraint (principal, key) decides which of two concurrent duplicates executes. When the view
answers, the response is stored on the record and later requests with the same key and the same
request (method, path and JSON body) get it back without anything being executed again. What is
kept, and for how long, is written down in docs/runs-api.md:

- kept for 24 hours: 2xx and 4xx responses, except 401, 409 and 429 — those say "not now"
  (a busy thread, the org's run cap), so the key is released and the same request may be retried;
- never kept: 5xx (the key is released; nothing was promised).

The same key with a different request → 409 `idempotency.conflict`; so is a duplicate arriving
while the first is still executing. A client that disconnects does not interrupt the claim, the
view or the settle (`run_to_completion`): its retry gets the stored answer, or runs once.

A stored answer never holds a secret: a view that returns one names its field with
`secret_fields_mark(response, "secret")`, and the stored copy (so every replay) has it `null`.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed

from arkloop.authentication import principal_from_request
from arkloop.errors import ApiError, BodyTooLarge, Conflict, ValidationFailed, error_response
from arkloop.middleware import HybridMiddleware
from arkloop.models import IdempotencyRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
TTL = timedelta(hours=24)
# Response headers that belong to the answer and are replayed with it.
REPLAYED_HEADERS = ("Content-Type", "Location", "Link", "Retry-After")
# "Not now" answers: storing them would pin the key to a failure the client is meant to retry.
TRANSIENT_STATUSES = frozenset({401, 409, 429})


# Response attribute naming top-level JSON fields that hold a secret (stored as null).
SECRET_FIELDS_ATTR = "idempotency_secret_fields"


def secret_fields_mark(response: HttpResponse, *fields: str) -> HttpResponse:
    """Say which fields of this JSON response are secrets: they are never stored for replays."""
    setattr(response, SECRET_FIELDS_ATTR, fields)
    return response


def _stored_body(response: HttpResponse) -> bytes:
    fields = getattr(response, SECRET_FIELDS_ATTR, ())
    if not fields:
        return response.content
    data = json.loads(response.content)
    return json.dumps({**data, **{name: None for name in fields if name in data}}).encode()


@dataclass(frozen=True)
class Claim:
    """The record this request inserted and must complete (or release)."""

    record_id: int


def _conflict(message: str) -> Conflict:
    return Conflict("idempotency.conflict", message)


def _canonical_body(raw: bytes) -> bytes:
    """The body as compared: JSON objects canonically (key order and spacing do not matter)."""
    try:
        return json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError, UnicodeDecodeError):
        return raw


def request_fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode(), _canonical_body(request.body)):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed({HEADER: [f"must be 1 to {MAX_KEY_LENGTH} printable characters"]})


def _replay(record: IdempotencyRecord, request: HttpRequest) -> HttpResponse:
    response = HttpResponse(bytes(record.response_body or b""), status=record.status_code)
    for name, value in record.response_headers.items():
        if name != "X-Trace-Id":
            response[name] = value
    response["Idempotent-Replayed"] = "true"
    # The replay is the first response, trace id included (TraceIdMiddleware sets the header from this).
    request.trace_id = record.response_headers.get("X-Trace-Id", request.trace_id)
    return response


def _insert(principal: str, key: str, request: HttpRequest, fingerprint: str) -> IdempotencyRecord | None:
    """Insert the claim; None when a record for (principal, key) exists already."""
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                principal=principal, key=key, method=request.method, path=request.path[:500],
                body_hash=fingerprint)
    except IntegrityError:
        return None


def idempotency_begin(*, principal: str, key: str, request: HttpRequest) -> Claim | HttpResponse:
    """Claim `key` for this request, or answer at once (replay, or 409 idempotency.conflict)."""
    fingerprint = request_fingerprint(request)
    for _ in range(2):
        record = _insert(principal, key, request, fingerprint)
        if record is not None:
            return Claim(record.pk)
        existing = IdempotencyRecord.objects.filter(principal=principal, key=key).first()
        if existing is None:
            continue  # released or purged in between: claim again
        if existing.created_at < timezone.now() - TTL:
            IdempotencyRecord.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
            continue
        if existing.body_hash != fingerprint:
            raise _conflict("this Idempotency-Key was used with a different request")
        if existing.status_code is None:
            raise _conflict("a request with this Idempotency-Key is still being processed")
        return _replay(existing, request)
    raise _conflict("this Idempotency-Key is contended; retry")


def idempotency_finish(*, claim: Claim, request: HttpRequest, response: HttpResponse | None) -> None:
    """Store the response on the claim, or release the key when the outcome is not to be kept."""
    records = IdempotencyRecord.objects.filter(pk=claim.record_id)
    status = response.status_code if response is not None else 500
    if response is None or response.streaming or status >= 500 or status in TRANSIENT_STATUSES:
        records.delete()
        return
    headers = {name: response[name] for name in REPLAYED_HEADERS if response.has_header(name)}
    headers["X-Trace-Id"] = getattr(request, "trace_id", "")
    records.update(status_code=status, response_body=_stored_body(response), response_headers=headers)


def idempotency_purge(*, older_than: timedelta = TTL) -> int:
    """Delete records past their replay window; returns how many. Safe to run any time."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted


_in_flight: set[asyncio.Task] = set()  # the event loop keeps only weak references to tasks


async def run_to_completion(work: Coroutine[Any, Any, T]) -> T:
    """Await `work`, run as a task of its own that cancelling the caller does not interrupt.

    Django's ASGI handler cancels a request's task when the client disconnects. In a keyed POST
    that cancellation used to land between the claim and the settle: after the claim (the record
    stayed "in progress" for 24 h, every retry a 409), or after the view had committed (the key
    was released as if nothing happened, and the retry ran the request again). Here, the claim,
    the view and the settle finish whatever happens to the caller: the request commits or rolls
    back as a whole and its key is settled either way. The caller's cancellation is then passed
    on; Django, which awaits the task it cancelled, waits for that too (so the request's thread
    and connection outlive the work). A second cancellation (Daphne gives up 10 s after the
    disconnect) stops only the waiting, never the work.
    """
    task = asyncio.ensure_future(work)
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            log.error("a keyed request failed after its client left", exc_info=task.exception())
        raise


def _principal_ident(request: HttpRequest) -> str | None:
    """Who is calling, or None when the credentials are not valid (the view will answer 401)."""
    try:
        return principal_from_request(request).ident
    except AuthenticationFailed:
        return None


class IdempotencyMiddleware(HybridMiddleware):
    """Applies `Idempotency-Key` to POSTs under /v1; everything else passes straight through."""

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        if not self._applies(request):
            return self.get_response(request)
        early = self._begin(request)
        if isinstance(early, HttpResponse):
            return early
        return self._run(request, early, self.get_response)

    async def _acall(self, request: HttpRequest):
        if not self._applies(request):
            return await self.get_response(request)
        return await run_to_completion(self._claim_run_settle(request))

    async def _claim_run_settle(self, request: HttpRequest) -> HttpResponse:
        early = await sync_to_async(self._begin)(request)
        if early is None:
            return await self.get_response(request)
        if isinstance(early, HttpResponse):
            return early
        response = None
        try:
            response = await self.get_response(request)
        finally:
            await sync_to_async(idempotency_finish)(claim=early, request=request, response=response)
        return response

    @staticmethod
    def _applies(request: HttpRequest) -> bool:
        return request.method == "POST" and request.path.startswith("/v1/") and HEADER in request.headers

    @staticmethod
    def _begin(request: HttpRequest) -> Claim | HttpResponse | None:
        principal = _principal_ident(request)
        if principal is None:
            return None  # not ours to judge: the view answers 401 and nothing is stored
        try:
            check_key(request.headers[HEADER])
            return idempotency_begin(principal=principal, key=request.headers[HEADER], request=request)
        except RequestDataTooBig:
            return error_response(BodyTooLarge())
        except ApiError as error:
            return error_response(error)

    @staticmethod
    def _run(request: HttpRequest, claim: Claim | None, get_response: Callable) -> HttpResponse:
        if claim is None:
            return get_response(request)
        response = None
        try:
            response = get_response(request)
        finally:
            idempotency_finish(claim=claim, request=request, response=response)
        return response
