"""The webhook sender: a task of every runner process (`runagents`) that POSTs due deliveries.

One asyncio loop, woken by the `arkloop_webhooks` NOTIFY on PostgreSQL (on the runner's one LISTEN
connection) and polling briefly on SQLite. Each pass claims what there is room for
(`outbox.deliveries_claim`): at most MAX_IN_FLIGHT attempts at once, and at most
PER_WEBHOOK_IN_FLIGHT per webhook, so a slow or dead endpoint holds a few slots of its own and
never delays other endpoints, nor the runs (the sender has its own database connection). Each
attempt is one signed POST through `PublicOnlyTransport` (public addresses only, checked on the
resolved address; redirects not followed), bounded to 10 s in all; its answer is settled by
`outbox.delivery_record`. While attempts are in flight their leases are renewed, so a runner
killed mid-attempt leaves deliveries another runner retries once the lease expires.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from django.db import DatabaseError, connection

from arkloop.db_threads import DbThreads
from arkloop.outbound import OutboundRefused, PublicOnlyTransport
from arkloop.text import text_clean
from webhooks.models import message_id
from webhooks.outbox import (
    Attempt,
    AttemptResult,
    DeliveryOutcome,
    deliveries_claim,
    deliveries_release,
    deliveries_renew,
    delivery_record,
    parse_retry_after,
)
from webhooks.signing import signature

log = logging.getLogger("webhooks.sender")
TIMEOUT_SECONDS = 10.0
MAX_IN_FLIGHT = 64
PER_WEBHOOK_IN_FLIGHT = 4
SQLITE_POLL_SECONDS = 0.2
POSTGRES_POLL_SECONDS = 1.0  # a safety net: NOTIFY wakes the sender; retries coming due need a clock
DB_DOWN_BACKOFF_SECONDS = (0.5, 5.0)
MAX_BODY_READ = 64 * 1024  # a small answer is read (the connection is reused); a larger one is dropped
ERROR_EXCERPT = 200
USER_AGENT = "Arkloop-Webhooks/1"


class WebhookSender:
    def __init__(self, *, owner: str, lease_seconds: float, max_in_flight: int = MAX_IN_FLIGHT,
                 per_webhook: int = PER_WEBHOOK_IN_FLIGHT,
                 on_outcome: Callable[[DeliveryOutcome], None] | None = None) -> None:
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.max_in_flight = max_in_flight
        self.per_webhook = per_webhook
        # Called with every attempt's outcome: where a delivery metric is counted.
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.in_flight: dict[str, tuple[str, asyncio.Task]] = {}  # delivery id → (webhook id, task)
        self._wake: asyncio.Event | None = None

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run_forever(self) -> None:
        """Send until cancelled; then give interrupted attempts back and close everything."""
        self._wake = asyncio.Event()
        self.db = DbThreads(1, name="webhooks-db")
        self.client = httpx.AsyncClient(transport=PublicOnlyTransport(), timeout=TIMEOUT_SECONDS,
                                        follow_redirects=False, headers={"User-Agent": USER_AGENT})
        poll = POSTGRES_POLL_SECONDS if connection.vendor == "postgresql" else SQLITE_POLL_SECONDS
        renewing = asyncio.create_task(self._renew_forever())
        backoff = DB_DOWN_BACKOFF_SECONDS[0]
        try:
            while True:
                try:
                    await self.claim_pass()
                    backoff = DB_DOWN_BACKOFF_SECONDS[0]
                except Exception as exc:  # keep sending once the database (or whatever broke) is back
                    if isinstance(exc, DatabaseError):
                        log.warning("webhook sender: database unavailable (%s); retrying in %.1fs", exc, backoff)
                    else:
                        log.exception("webhook sender: claiming failed; retrying in %.1fs", backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, DB_DOWN_BACKOFF_SECONDS[1])
                await self._sleep(poll)
        finally:
            renewing.cancel()
            await self._close()

    async def _sleep(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass
        self._wake.clear()

    async def claim_pass(self) -> int:
        """Claim what there is room for and start its attempts; returns how many."""
        busy = Counter(webhook_id for webhook_id, _ in self.in_flight.values())
        attempts = await self.db.call(deliveries_claim, owner=self.owner, room=self.max_in_flight - len(self.in_flight),
                                      busy=dict(busy), per_webhook=self.per_webhook, lease_seconds=self.lease_seconds)
        for attempt in attempts:
            task = asyncio.create_task(self._deliver(attempt), name=f"webhook-{attempt.delivery_id}")
            self.in_flight[attempt.delivery_id] = (attempt.webhook_id, task)
        return len(attempts)

    async def _deliver(self, attempt: Attempt) -> None:
        try:
            result = await self.post(attempt)
            outcome = await self.db.call(delivery_record, attempt=attempt, owner=self.owner, result=result)
        except Exception:  # the lease expires and the delivery is attempted again
            log.exception("webhook delivery %s: recording the answer failed", attempt.delivery_id)
            return
        finally:
            self.in_flight.pop(attempt.delivery_id, None)
            self.wake()  # room for another claim
        self.on_outcome(outcome)
        if outcome != DeliveryOutcome.DELIVERED:
            log.info("webhook delivery %s (webhook %s, attempt %d): %s — %s", attempt.delivery_id,
                     attempt.webhook_id, attempt.number, outcome, result.error or result.status_code)

    async def post(self, attempt: Attempt) -> AttemptResult:
        """One signed POST of the delivery's body; never raises for what the endpoint does."""
        if attempt.secrets is None:
            return AttemptResult(error="the webhook secret cannot be decrypted (ARKLOOP_ENCRYPTION_KEY changed)")
        now = datetime.now(UTC)
        msg_id = message_id(attempt.delivery_id)
        headers = {"Content-Type": "application/json", "webhook-id": msg_id,
                   "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": signature(message_id=msg_id, timestamp=now, body=attempt.body,
                                                  secrets=attempt.secrets)}
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                async with self.client.stream("POST", attempt.url, content=attempt.body.encode(),
                                              headers=headers) as response:
                    excerpt = await _read_start(response)
        except TimeoutError:
            return AttemptResult(error=f"no answer within {TIMEOUT_SECONDS:.0f} s")
        except OutboundRefused as exc:
            return AttemptResult(error=f"refused: the URL {exc}")
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            return AttemptResult(error=_describe(exc))
        result = AttemptResult(status_code=response.status_code,
                               retry_after=parse_retry_after(response.headers.get("retry-after"), now=now))
        if not result.delivered:
            error = f"HTTP {response.status_code}" + (f": {excerpt}" if excerpt else "")
            result = AttemptResult(status_code=result.status_code, retry_after=result.retry_after, error=error)
        return result

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            if self.in_flight:
                try:
                    await self.db.call(deliveries_renew, owner=self.owner, delivery_ids=list(self.in_flight),
                                       lease_seconds=self.lease_seconds)
                except DatabaseError as exc:
                    log.warning("webhook sender: renewing leases failed (%s)", exc)

    async def _close(self) -> None:
        interrupted = list(self.in_flight)
        for _, task in list(self.in_flight.values()):
            task.cancel()
        await asyncio.gather(*(task for _, task in list(self.in_flight.values())), return_exceptions=True)
        try:
            if interrupted:
                await self.db.call(deliveries_release, owner=self.owner, delivery_ids=interrupted)
        except DatabaseError:
            pass  # the leases expire instead
        finally:
            await self.client.aclose()
            await asyncio.get_running_loop().run_in_executor(None, self.db.close)


async def _read_start(response: httpx.Response) -> str:
    """Read a small answer whole (so the connection can be reused); return its start, cleaned."""
    data = b""
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) > MAX_BODY_READ:
            break
    text = data[:ERROR_EXCERPT].decode("utf-8", errors="replace")
    return text_clean(" ".join(text.split()))


def _describe(exc: Exception) -> str:
    detail = text_clean(str(exc))[:ERROR_EXCERPT]
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
