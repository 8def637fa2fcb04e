"""Server-Sent Events framing: one run event → one `id/event/data` frame, rendered once.

A frame is rendered to bytes a single time (by the hub, or by a stream's replay) and shared by
every stream that sends it, so fan-out to many followers costs no extra JSON encoding. The hub
also frames each event it fans out as one HTTP/1.1 chunk (`http_chunk`), shared by every live
stream it writes to under Daphne (runs/stream/transport.py); a replay's frames go through `send`
and are never framed here.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from arkloop.text import json_clean
from runs.models import TERMINAL_EVENT_STATUS

PING = b": ping\n\n"


@dataclass(frozen=True, slots=True)
class Frame:
    """One rendered event: its seq, whether it ends the run, and the bytes to send."""

    seq: int
    terminal: bool
    body: bytes


def http_chunk(body: bytes) -> bytes:
    """`body` framed as one HTTP/1.1 chunk, byte for byte as Twisted's `toChunk` frames it."""
    return b"%x\r\n%b\r\n" % (len(body), body)


def rfc3339(value: dt.datetime) -> str:
    """UTC with microseconds and a `Z`, like the rest of the API (SPEC §1)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render_frame(*, run_id: str, seq: int, type: str, data: dict[str, Any], created_at: dt.datetime) -> Frame:
    payload = {"seq": seq, "type": type, "data": data, "created_at": rfc3339(created_at), "run_id": run_id}
    try:
        body = _frame_bytes(seq, type, payload)
    except (UnicodeEncodeError, ValueError):
        # Stored before text from elsewhere was cleaned on the way in (a lone surrogate cannot be
        # UTF-8, NaN is not JSON): send it cleaned rather than fail the stream.
        body = _frame_bytes(seq, type, json_clean(payload))
    return Frame(seq=seq, terminal=type in TERMINAL_EVENT_STATUS, body=body)


def _frame_bytes(seq: int, type: str, payload: dict[str, Any]) -> bytes:
    # json.dumps escapes CR and LF inside strings, so the data line is always a single line.
    line = json.dumps(payload, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return f"id: {seq}\nevent: {type}\ndata: {line}\n\n".encode()
