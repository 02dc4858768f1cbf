"""A line whose parts report no processing time (0), as a twin that follows an
OPC UA server without a processing-time node receives them (docs/opcua.md).

Such a stream says nothing of processing times, jams or the operating clock: the
learnt line must still be a valid line file, with those named as unknown, not
made up from zeros (a processing time of 0 between jams broke ``GET /model`` and
every alarm rule of such a twin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sensors.loopback import LoopbackLine
from twin.config.line import LineConfig, load_config
from twin.contract import PartFinished
from twin.learning.line import learn_line, learn_unfiled_line
from twin.learning.observer import LineLearner

REPO = Path(__file__).resolve().parents[3]


class UntimedLearner(LineLearner):
    """A learner that gets every finished part with its processing time as 0."""

    def observe(self, station: str | None, message: Any) -> None:
        if isinstance(message, PartFinished):
            message = message.model_copy(update={"processing_time_s": 0.0})
        super().observe(station, message)


@pytest.mark.parametrize(("template", "seed"), [("smt.yaml", 3), ("cnc_cell.yaml", 8)])
def test_a_stream_without_processing_times_learns_a_valid_line(template: str, seed: int) -> None:
    config = load_config(REPO / "examples" / "lines" / template)
    learner = UntimedLearner()
    line = LoopbackLine(config, seed, learner.observe)
    line.run_until(24 * 3600.0)
    finished = sum(station.good for station in line.twin.view().stations)
    assert finished > 0

    filed = learn_line(config, learner)
    LineConfig.model_validate(filed.line)
    learnt_names = {(item.station, item.parameter) for item in filed.parameters}
    for spec in config.stations:
        # Nothing learnt from zeros: no processing time, no jams, from these parts.
        assert not any(
            station == spec.id and name.startswith(("processing_time", "microstops"))
            for station, name in learnt_names
        ), sorted(learnt_names)
        assert any(spec.id in note and "processing" in note for note in filed.not_learnt), (
            spec.id,
            filed.not_learnt,
        )

    unfiled = learn_unfiled_line(line.twin.view(), learner)
    LineConfig.model_validate(unfiled.line)
