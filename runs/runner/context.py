"""Loading what one run needs to execute: the run, its persona, its routes, its log, its org's MCP
servers, and as much of the conversation as its route's context window can take."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.functions import Length
from django.utils import timezone

from arkloop.rows import model_from_row, select_columns
from mcp_servers.config import ServerConfig
from mcp_servers.models import McpServer
from mcp_servers.selectors import mcp_server_configs
from personas.models import Persona, Route
from personas.selectors import persona_memoized, route_by_id
from personas.tool_patterns import tool_allowed
from runs.limits import platform_limits
from runs.models import Run, RunEvent
from runs.runner.budget import Budget
from runs.runner.providers.base import Entry
from runs.runner.state import RunLog, log_replay
from runs.runner.tools import REGISTRY, tool_specs
from runs.runner.window import CHARS_PER_TOKEN, MESSAGE_OVERHEAD_TOKENS, input_budget, message_tokens
from threads.models import Message

MAX_FALLBACKS = 3
PAGE = 500  # messages sized per query while filling the window, newest first


@dataclass
class PersonaConfig:
    """The parts of a persona the loop uses (defaults when a run names no stored persona)."""

    system_prompt: str = ""
    tools: list[str] = field(default_factory=lambda: [*REGISTRY, "mcp__*"])
    confirm_tools: list[str] = field(default_factory=list)
    max_output_tokens: int | None = None  # the provider's max_tokens per call
    temperature: float | None = None
    stream_thinking: bool = False
    route_id: str = ""


@dataclass
class RunContext:
    run: Run
    persona: PersonaConfig
    routes: list[Route]            # the selected route, then its fallbacks
    conversation: list[Entry]      # the newest visible thread messages that fit the window, oldest first
    log: RunLog
    budget: Budget
    older_messages: int = 0        # visible thread messages before `conversation`, not loaded
    problem: str = ""              # why the run cannot execute at all (unknown persona or route)
    mcp_servers: list[ServerConfig] = field(default_factory=list)  # the org's, header values decrypted


class ContextProblem(Exception):
    pass


def context_load(run_id: Any) -> RunContext:
    run, events, has_mcp_servers = _run_and_log(run_id)
    log = log_replay([(type, data) for type, data, _ in events])
    budget = Budget(limits=run.limits or platform_limits(), spent_seconds=_seconds_running(run, events))
    try:
        persona = _persona(run)
        routes = _routes(log.route_id or run.route_id or persona.route_id or settings.ARKLOOP_DEFAULT_ROUTE)
    except ContextProblem as exc:
        return RunContext(run=run, persona=PersonaConfig(), routes=[], conversation=[], log=log, budget=budget,
                          problem=str(exc))
    room = input_budget(context_window=routes[0].context_window, max_tokens=persona.max_output_tokens,
                        system_prompt=persona.system_prompt, tools=tool_specs(persona.tools))
    conversation, older = conversation_load(run, max_tokens=room)
    servers = mcp_server_configs(org_id=run.org_id) if has_mcp_servers and _may_call_mcp(persona.tools) else []
    return RunContext(run=run, persona=persona, routes=routes, conversation=conversation, log=log, budget=budget,
                      older_messages=older, mcp_servers=servers)


def _run_and_log(run_id: Any) -> tuple[Run, list[tuple[str, dict, dt.datetime]], bool]:
    """The run, its events `(type, data, created_at)` in seq order, and whether its org may have MCP
    servers — on PostgreSQL in one query (the log as one JSON array) that also tells whether it has
    any; elsewhere the ORM's two queries, and the servers are looked up as ever."""
    if connection.vendor != "postgresql":
        run = Run.objects.get(pk=run_id)
        events = RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("type", "data", "created_at")
        return run, list(events), True
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {select_columns(Run, alias='r')}, "
            f"(SELECT coalesce(json_agg(json_build_array(e.type, e.data, e.created_at) ORDER BY e.seq), '[]')::text "
            f"FROM {RunEvent._meta.db_table} e WHERE e.run_id = r.id), "
            f"EXISTS (SELECT 1 FROM {McpServer._meta.db_table} s WHERE s.org_id = r.org_id) "
            f"FROM {Run._meta.db_table} r WHERE r.id = %s", [run_id])
        row = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(run_id)
    *columns, events, has_mcp_servers = row
    return model_from_row(Run, columns), [(type, data, dt.datetime.fromisoformat(at))
                                          for type, data, at in json.loads(events)], has_mcp_servers


def _seconds_running(run: Run, events: list[tuple[str, dict, dt.datetime]]) -> float:
    """Wall-clock seconds since the run was created, less the time it spent waiting for input."""
    waited, since = dt.timedelta(0), None
    for type, _, created_at in events:
        if type == "run.waiting_for_input":
            since = created_at
        elif type == "run.input_provided" and since is not None:
            waited += created_at - since
            since = None
    return ((timezone.now() - run.created_at) - waited).total_seconds()


def _persona(run: Run) -> PersonaConfig:
    wanted = run.persona_id or settings.ARKLOOP_DEFAULT_PERSONA
    persona = persona_memoized(org_id=run.org_id, persona_id=wanted)
    if persona is None:
        if run.persona_id:
            raise ContextProblem(f"persona {run.persona_id!r} is not available")
        return PersonaConfig()
    return _config(persona)


def _config(persona: Persona) -> PersonaConfig:
    return PersonaConfig(system_prompt=persona.system_prompt, tools=list(persona.tools or []),
                         confirm_tools=list(persona.confirm_tools or []),
                         max_output_tokens=persona.max_output_tokens or None, temperature=persona.temperature,
                         stream_thinking=persona.stream_thinking, route_id=persona.route_id)


def _routes(route_id: str) -> list[Route]:
    """The route and its fallback chain (no cycles). The built-in `stub` works even when not stored.

    Routes are memoized per process (personas.selectors.route_by_id): read them, never change them."""
    route = route_by_id(route_id)
    if route is None and route_id == "stub":
        route = Route(id="stub", provider=Route.Provider.STUB, model="stub")
    if route is None:
        raise ContextProblem(f"route {route_id!r} is not available")
    chain = [route]
    while chain[-1].fallback_id and len(chain) <= MAX_FALLBACKS:
        fallback = route_by_id(chain[-1].fallback_id)
        if fallback is None or not fallback.is_active or any(r.pk == fallback.pk for r in chain):
            break
        chain.append(fallback)
    return chain


def conversation_load(run: Run, *, max_tokens: int) -> tuple[list[Entry], int]:
    """The newest visible messages of the run's thread (up to its creation, not its own) whose
    estimated tokens fit in `max_tokens`, oldest first, and how many older ones were left out.

    Sizes are read newest first a page at a time and contents only for the messages kept, so a
    thread of any length costs what the window can take. The newest message is always kept. On
    PostgreSQL a thread whose window is decided within the first page takes one query.
    """
    if connection.vendor == "postgresql" and (found := _first_page_postgres(run, max_tokens=max_tokens)):
        return found
    visible = _visible_messages(run)
    used, cursor, full = 0, None, False
    while not full:
        page = visible if cursor is None else visible.filter(_before(cursor))
        rows = list(page.annotate(size=Length("content")).order_by("-created_at", "-id")
                    .values_list("created_at", "id", "size")[:PAGE])
        for created_at, pk, size in rows:
            cost = message_tokens(size)
            if cursor is not None and used + cost > max_tokens:
                full = True
                break
            used, cursor = used + cost, (created_at, pk)
        if len(rows) < PAGE:
            break
    if cursor is None:
        return [], 0
    older = visible.filter(_before(cursor)).count() if full else 0
    kept = visible.exclude(_before(cursor)).order_by("created_at", "id").values_list("role", "content")
    return [Entry(role=role, content=content) for role, content in kept], older


def _visible_messages(run: Run) -> QuerySet[Message]:
    return (Message.objects.filter(thread_id=run.thread_id, hidden_at__isnull=True, created_at__lte=run.created_at)
            .exclude(run_id=run.pk))


def _first_page_postgres(run: Run, *, max_tokens: int) -> tuple[list[Entry], int] | None:
    """`conversation_load`'s first page in one query: the newest PAGE messages' estimated tokens
    summed newest first, contents only for those kept. None when all PAGE of them fit (the
    window may take older ones: the paged reading decides).

    `used` restates runs.runner.window.message_tokens in SQL (overhead + length // chars per
    token + 1, the constants passed from there): the sum decides which contents the query sends,
    so it cannot be left to Python without loading every content of the page. Change both
    together; tests/runner/test_context_window.py checks they agree on odd texts.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT role, CASE WHEN n = 1 OR used <= %s THEN content END, n = 1 OR used <= %s FROM ("
            "SELECT p.*, sum(%s + p.size / %s + 1) OVER w AS used, row_number() OVER w AS n FROM ("
            f"SELECT m.created_at, m.id, m.role, m.content, length(m.content) AS size FROM {Message._meta.db_table} m "
            "WHERE m.thread_id = %s AND m.hidden_at IS NULL AND m.created_at <= %s "
            "AND (m.run_id IS NULL OR m.run_id <> %s) ORDER BY m.created_at DESC, m.id DESC LIMIT %s) p "
            "WINDOW w AS (ORDER BY p.created_at DESC, p.id DESC)) s ORDER BY created_at, id",
            [max_tokens, max_tokens, MESSAGE_OVERHEAD_TOKENS, CHARS_PER_TOKEN, run.thread_id, run.created_at, run.pk,
             PAGE])
        rows = cursor.fetchall()
    kept = [Entry(role=role, content=content) for role, content, keep in rows if keep]
    if len(rows) == PAGE and len(kept) == PAGE:
        return None
    older = len(rows) - len(kept)
    if older:  # the window is full: every older visible message counts too
        older = _visible_messages(run).count() - len(kept)
    return kept, older


def _before(cursor: tuple[dt.datetime, Any]) -> Q:
    """Messages older than `(created_at, id)` in the conversation's order."""
    created_at, pk = cursor
    return Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk)


def _may_call_mcp(patterns: list[str]) -> bool:
    """Whether the persona's `tools` can allow any MCP tool (else the org's servers need no loading)."""
    return any(pattern.startswith("mcp__") or tool_allowed([pattern], "mcp__") for pattern in patterns)


def route_selected_data(route: Route) -> dict[str, str]:
    """The data of `run.route.selected`."""
    return {"route_id": route.pk, "provider": route.provider, "model": route.model}
