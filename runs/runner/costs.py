"""Cost and credits with Decimal, exactly as SPEC §5."""
from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings

from personas.models import Route

if TYPE_CHECKING:  # the API process imports this module: it must not load the provider SDKs
    from runs.runner.providers.base import Usage

MILLION = Decimal(1_000_000)


def turn_cost(usage: Usage, route: Route) -> Decimal:
    """((input − cached)·p_in + cached·p_cached + output·p_out) / 1e6, prices per million tokens."""
    uncached = max(usage.input_tokens - usage.cached_input_tokens, 0)
    return (uncached * Decimal(route.price_input) + usage.cached_input_tokens * Decimal(route.price_cached_input)
            + usage.output_tokens * Decimal(route.price_output)) / MILLION


def credits_for(total_cost_usd: Decimal) -> int:
    """ceil(total_cost_usd · ARKLOOP_CREDITS_PER_USD)."""
    return math.ceil(total_cost_usd * Decimal(settings.ARKLOOP_CREDITS_PER_USD))


def cost_number(cost: Decimal) -> float:
    """A cost as a JSON number for event data (totals stay Decimal in the database)."""
    return float(cost)
