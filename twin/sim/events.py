"""What the plant tells its listeners: a part started, a part finished, a
station changed state. The publisher (``sensors.publisher``) turns them into
messages; the datasets built from a simulation (``models.dataset.parts``) read them
directly, as does the batch report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from twin.contract import StationStateName

SimTime = float
StationId = str
PartId = int
PartOutcome = Literal["good", "scrap", "rework"]


@dataclass(frozen=True, slots=True)
class PartStartedEvent:
    time: SimTime
    station: StationId
    machine: int
    part_id: PartId
    product: str
    input_buffer_level: int | None


@dataclass(frozen=True, slots=True)
class PartFinishedEvent:
    time: SimTime
    station: StationId
    machine: int
    part_id: PartId
    product: str
    outcome: PartOutcome
    processing_time_s: float
    exits_line: bool
    output_buffer_level: int | None
    process: dict[str, float] | None = None
    # The part's true defect probability at this station (the quality model without
    # its per-part noise; a station's constant ``defect_probability`` otherwise).
    # Ground truth for evaluating defect models: not in the MQTT contract, never
    # published, so the twin never sees it.
    defect_probability: float | None = None

    @property
    def good(self) -> bool:
        return self.outcome == "good"


@dataclass(frozen=True, slots=True)
class StateChangedEvent:
    time: SimTime
    station: StationId
    machine: int
    from_state: StationStateName | None
    to_state: StationStateName
    reason: str


PlantEvent = PartStartedEvent | PartFinishedEvent | StateChangedEvent
PlantListener = Callable[[PlantEvent], None]
