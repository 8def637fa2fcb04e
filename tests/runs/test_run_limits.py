"""Run limits on the API: the effective limits on the run object, and a create body that may only lower them."""
import pytest

from personas.models import Persona
from runs.models import Run
from tests.runs.stories import finish, start_run, thread_with_question

LIMITS = {"max_turns", "max_tool_calls", "max_output_tokens", "max_cost_usd", "timeout_seconds"}


def create(actor, limits) -> "object":
    return actor.client.post(f"/v1/threads/{thread_with_question(actor)}/runs", {"limits": limits})


def test_the_run_object_shows_the_effective_limits(alice, settings):
    settings.ARKLOOP_MAX_TOOL_CALLS = 50
    Persona.objects.create(key="thrifty", version=1, route_id="stub", limits={"max_turns": 6, "max_cost_usd": 2})
    run_id = start_run(alice, thread_with_question(alice), {"persona_id": "thrifty",
                                                            "limits": {"max_cost_usd": 0.5, "timeout_seconds": 60}})
    shown = alice.client.get(f"/v1/runs/{run_id}").json()["limits"]
    assert shown == {"max_turns": 6, "max_tool_calls": 50, "max_output_tokens": None, "max_cost_usd": 0.5,
                     "timeout_seconds": 60}
    listed = {r["run_id"]: r for r in alice.client.get("/v1/runs").json()}
    assert listed[run_id]["limits"] == shown


def test_without_limits_a_run_gets_the_platform_and_persona_limits(alice, settings):
    settings.ARKLOOP_RUN_TIMEOUT_SECONDS = 120
    run_id = start_run(alice, thread_with_question(alice))
    limits = alice.client.get(f"/v1/runs/{run_id}").json()["limits"]
    assert set(limits) == LIMITS and limits["timeout_seconds"] == 120 and limits["max_output_tokens"] is None
    assert limits["max_turns"] == 32 and limits["max_tool_calls"] == 128  # default@2 sets none of its own


@pytest.mark.parametrize("limits,field", [
    ({"max_turns": 33}, "limits.max_turns"),            # above the platform's 32
    ({"max_tool_calls": 129}, "limits.max_tool_calls"),  # above the platform's 128
    ({"timeout_seconds": 901}, "limits.timeout_seconds"),
    ({"max_turns": -1}, "limits.max_turns"),
    ({"max_cost_usd": -0.01}, "limits.max_cost_usd"),
    ({"max_turns": 2.5}, "limits.max_turns"),
    ({"max_turns": "3"}, "limits.max_turns"),
    ({"max_turns": True}, "limits.max_turns"),
    ({"max_output_tokens": 10**10}, "limits.max_output_tokens"),
    ({"max_cost": 1}, "limits.max_cost"),
    (["max_turns"], "limits"),
])
def test_a_limit_that_does_not_lower_is_422_naming_it(alice, limits, field):
    response = create(alice, limits)
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "validation.error"
    assert list(response.json()["details"]["fields"]) == [field]
    assert not Run.objects.exists()


def test_limits_equal_to_the_ceiling_or_zero_are_accepted(alice):
    response = create(alice, {"max_turns": 32, "max_tool_calls": 0, "max_output_tokens": 0, "timeout_seconds": 0.5})
    assert response.status_code == 201
    assert Run.objects.get(pk=response.json()["run_id"]).limits["max_tool_calls"] == 0


def test_a_retry_keeps_the_lowered_limits_of_the_run_it_retries(alice):
    thread_id = thread_with_question(alice)
    first = start_run(alice, thread_id, {"limits": {"max_turns": 2}})
    finish(first)
    retried = alice.client.post(f"/v1/threads/{thread_id}:retry").json()["run_id"]
    assert Run.objects.get(pk=retried).limits["max_turns"] == 2
    finish(retried)
    lowered = alice.client.post(f"/v1/threads/{thread_id}:retry", {"limits": {"max_turns": 1}}).json()["run_id"]
    assert Run.objects.get(pk=lowered).limits["max_turns"] == 1
