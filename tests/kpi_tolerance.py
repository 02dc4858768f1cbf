"""How far above 1 effectiveness may lie by chance (docs/kpis.md, "Ratios above 1").

Processing times vary around their mean, so over PQ parts the time taken can
fall short of PRU x PQ: effectiveness, and OEE with it, exceed 1 by about
``sigma / (mu * sqrt(PQ))`` per standard deviation. A check allows ``Z`` such
standard deviations (tests/twin/state/test_kpi_bounds.py explains the choice).
"""

from __future__ import annotations

import math

from twin.config.line import Station

Z = 4.5
# Floating point: a deterministic station at its maximum speed runs exactly its PRU.
EPSILON = 1e-9


def effectiveness_tolerance(spec: Station, products: list[str], produced: int) -> float:
    """Z standard deviations of sum(draws) / sum(nominal means) over ``produced`` parts."""
    by_product = spec.processing_time_by_product
    durations = [by_product.get(product, spec.processing_time) for product in products]
    sigma_max = max(math.sqrt(float(duration.variance)) for duration in durations)
    mu_min = min(float(duration.mean) for duration in durations)
    if produced == 0 or sigma_max == 0:
        return EPSILON
    return Z * sigma_max / (mu_min * math.sqrt(produced)) + EPSILON
