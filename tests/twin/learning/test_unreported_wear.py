"""A line whose parts do not report the tool wear that its file's quality curve
rises with (a real line without a wear sensor, or one followed over OPC UA).

A base defect probability fitted without the wear takes in the wear the line ran
at: on the SMT printer, whose stencil is wiped every few prints, it came out at
2.65 times the file's "new tool" value, and the twin raised a drift alarm on a line
that had not drifted. Such a base is not comparable with the file's: the file's
is kept, unjudged, and the learnt line says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sensors.loopback import LoopbackLine
from twin.config.line import LineConfig, load_config
from twin.contract import PartFinished
from twin.learning.line import learn_line
from twin.learning.observer import LineLearner

SMT = Path(__file__).resolve().parents[3] / "examples" / "lines" / "smt.yaml"


class NoWearLearner(LineLearner):
    """A learner that gets every finished part without its tool wear."""

    def observe(self, station: str | None, message: Any) -> None:
        if isinstance(message, PartFinished) and message.process and "wear" in message.process:
            process = {k: v for k, v in message.process.items() if k != "wear"}
            message = message.model_copy(update={"process": process})
        super().observe(station, message)


def test_a_base_defect_probability_fitted_without_the_wear_is_not_judged() -> None:
    config = load_config(SMT)
    worn = [s for s in config.stations if s.process.quality and s.process.quality.wear_sensitivity]
    assert worn, "the SMT line has a station whose quality rises with wear"
    with_wear, without = LineLearner(), NoWearLearner()

    def both(station: str | None, message: Any) -> None:
        with_wear.observe(station, message)
        without.observe(station, message)

    LoopbackLine(config, 12, both).run_until(24 * 3600.0)
    told = learn_line(config, with_wear)
    blind = learn_line(config, without)
    LineConfig.model_validate(blind.line)
    for spec in worn:
        assert spec.process.quality is not None
        key = (spec.id, "process.quality.base_defect_probability")
        learnt = {(p.station, p.parameter): p for p in told.parameters}
        # With the wear reported, the base is learnt and agrees with the file.
        assert key in learnt, told.not_learnt
        assert not learnt[key].drifted, learnt[key]
        # Without it, it is not judged, the file's is kept, and the line says why.
        assert key not in {(p.station, p.parameter) for p in blind.parameters}
        block = next(s for s in blind.line["stations"] if s["id"] == spec.id)
        kept = block["process"]["quality"]["base_defect_probability"]
        assert kept == spec.process.quality.base_defect_probability
        assert any(
            note.startswith(f"{spec.id} base defect probability") and "wear" in note
            for note in blind.not_learnt
        ), blind.not_learnt
