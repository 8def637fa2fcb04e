"""A small SSE client over real HTTP (httpx) for the stream tests: frames as dicts, pings counted."""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

TIMEOUT = httpx.Timeout(20.0, connect=5.0)  # a hang guard, not a speed assertion


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data_lines: list[str] = field(default_factory=list)

    @property
    def data(self) -> dict:
        return json.loads("\n".join(self.data_lines))

    @property
    def seq(self) -> int:
        return int(self.id)


def iter_sse(response: httpx.Response) -> Iterator[Frame | str]:
    """Parse the body into `Frame`s (events) and strings (comments, e.g. "ping"), as they arrive."""
    frame = Frame()
    for line in response.iter_lines():
        if line == "":
            if frame.data_lines or frame.id is not None:
                yield frame
            frame = Frame()
        elif line.startswith(":"):
            yield line[1:].strip()
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                frame.id = value
            elif name == "event":
                frame.event = value
            elif name == "data":
                frame.data_lines.append(value)


def events_url(base: str, run_id: object, **params: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{base}/v1/runs/{run_id}/events" + (f"?{query}" if query else "")


def read_all(url: str, headers: dict[str, str]) -> tuple[httpx.Response, list[Frame]]:
    """Read a stream to its end (it must close by itself); returns the response and its frames."""
    with httpx.stream("GET", url, headers=headers, timeout=TIMEOUT) as response:
        frames = [item for item in iter_sse(response) if isinstance(item, Frame)]
    return response, frames
