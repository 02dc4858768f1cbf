"""An alarm of the anomaly detector: what the detector raises and what its
evaluation against the known faults (``models.anomaly.truth``) scores."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Alarm:
    """A run of anomalous windows at a station: from the start of its first window
    to the end of its last; ``raised_ms`` is when it was known (the end of the
    window that completed the run of ``persistence`` windows)."""

    station: str
    start_ms: int
    end_ms: int
    peak_score: float
    raised_ms: int
