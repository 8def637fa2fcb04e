"""Loading what one run needs to execute: the run, its persona, its routes, the conversation, its log."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from personas.models import Persona, Route
from personas.selectors import persona_find
from runs.models import Run, RunEvent
from runs.runner.providers.base import Entry
from runs.runner.state import RunLog, log_replay
from runs.runner.tools import REGISTRY
from threads.models import Message

MAX_FALLBACKS = 3


@dataclass
class PersonaConfig:
    """The parts of a persona the loop uses (defaults when a run names no stored persona)."""

    system_prompt: str = ""
    tools: list[str] = field(default_factory=lambda: list(REGISTRY))
    confirm_tools: list[str] = field(default_factory=list)
    max_iterations: int = 8
    max_output_tokens: int | None = None
    temperature: float | None = None
    stream_thinking: bool = False
    route_id: str = ""


@dataclass
class RunContext:
    run: Run
    persona: PersonaConfig
    routes: list[Route]            # the selected route, then its fallbacks
    conversation: list[Entry]      # the thread's visible messages this run answers
    log: RunLog
    problem: str = ""              # why the run cannot execute at all (unknown persona or route)


class ContextProblem(Exception):
    pass


def context_load(run_id: Any) -> RunContext:
    run = Run.objects.get(pk=run_id)
    events = RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("type", "data")
    log = log_replay(list(events))
    try:
        persona = _persona(run)
        routes = _routes(log.route_id or run.route_id or persona.route_id or settings.ARKLOOP_DEFAULT_ROUTE)
    except ContextProblem as exc:
        return RunContext(run=run, persona=PersonaConfig(), routes=[], conversation=[], log=log, problem=str(exc))
    return RunContext(run=run, persona=persona, routes=routes, conversation=_conversation(run), log=log)


def _persona(run: Run) -> PersonaConfig:
    wanted = run.persona_id or settings.ARKLOOP_DEFAULT_PERSONA
    persona = persona_find(org_id=run.org_id, persona_id=wanted)
    if persona is None:
        if run.persona_id:
            raise ContextProblem(f"persona {run.persona_id!r} is not available")
        return PersonaConfig()
    return _config(persona)


def _config(persona: Persona) -> PersonaConfig:
    return PersonaConfig(system_prompt=persona.system_prompt, tools=list(persona.tools or []),
                         confirm_tools=list(persona.confirm_tools or []), max_iterations=persona.max_iterations,
                         max_output_tokens=persona.max_output_tokens or None, temperature=persona.temperature,
                         stream_thinking=persona.stream_thinking, route_id=persona.route_id)


def _routes(route_id: str) -> list[Route]:
    """The route and its fallback chain (no cycles). The built-in `stub` works even when not stored."""
    route = Route.objects.filter(pk=route_id).first()
    if route is None and route_id == "stub":
        route = Route(id="stub", provider=Route.Provider.STUB, model="stub")
    if route is None:
        raise ContextProblem(f"route {route_id!r} is not available")
    chain = [route]
    while chain[-1].fallback_id and len(chain) <= MAX_FALLBACKS:
        fallback = Route.objects.filter(pk=chain[-1].fallback_id, is_active=True).first()
        if fallback is None or any(r.pk == fallback.pk for r in chain):
            break
        chain.append(fallback)
    return chain


def _conversation(run: Run) -> list[Entry]:
    """Visible messages of the thread up to the run's creation, oldest first (not this run's own)."""
    messages = (Message.objects.filter(thread_id=run.thread_id, hidden_at__isnull=True, created_at__lte=run.created_at)
                .exclude(run_id=run.pk).order_by("created_at", "id").values_list("role", "content"))
    return [Entry(role=role, content=content) for role, content in messages]


def route_selected_data(route: Route) -> dict[str, str]:
    """The data of `run.route.selected`."""
    return {"route_id": route.pk, "provider": route.provider, "model": route.model}
