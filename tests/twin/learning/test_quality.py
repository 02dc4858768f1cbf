"""A station's quality curve (``process.quality``), learnt from its parts'
results and the speed, temperature and wear each saw.

The default line's machining scraps more as its tool wears (log-odds rise with
3 x wear²). The learnt curve fits its base defect probability and wear
sensitivity (``logistic_model``): on the file's own plant they cover the file's
values, on a plant whose tool matters twice as much they cover the hidden ones
and are called drift. Where the parts were made at several setpoints (an
operator's changes, the optimizer's trials), the curve's best speed and
temperature and their tolerances are fitted too; a line run at one speed keeps
the file's and says why.
"""

from __future__ import annotations

import numpy as np
import pytest
from feeding import feed_learner

from twin.config.line import LineConfig, load_config
from twin.learning.estimators import logistic_model
from twin.learning.line import LearnedParameter, learn_line

BASE = "process.quality.base_defect_probability"
WEAR = "process.quality.wear_sensitivity"


def _machining(learnt_parameters: list[LearnedParameter]) -> dict[str, LearnedParameter]:
    return {p.parameter: p for p in learnt_parameters if p.station == "machining"}


def test_the_fit_recovers_a_known_curve_with_noise_on_the_log_odds() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(20):
        wear = rng.uniform(0, 0.64, 4000)
        offset = rng.choice([0.0, 0.8], 4000)
        log_odds = -4.5 + 3.0 * wear + offset + rng.normal(0, 0.4, 4000)
        defective = rng.random(4000) < 1 / (1 + np.exp(-log_odds))
        model = logistic_model(defective, offset, [wear], noise_sd=0.4)
        intercept = model.interval(float(model.coefficients[0]), [1.0, 0.0])
        slope = model.interval(float(model.coefficients[1]), [0.0, 1.0])
        covered += intercept.covers(-4.5) and slope.covers(3.0)
    # Two 95% intervals together: about 18 of 20, and rarely fewer than 16.
    assert covered >= 16
    with pytest.raises(ValueError, match="both events and non-events"):
        logistic_model([False] * 10, [0.0] * 10)


def test_the_files_curve_is_recovered_and_not_called_drift() -> None:
    nominal = load_config()
    _, learner = feed_learner(nominal, 72.0, seed=2)
    learnt = learn_line(nominal, learner)
    found = _machining(learnt.parameters)
    for name, truth in ((BASE, 0.006), (WEAR, 3.0)):
        item = found[name]
        assert item.low <= truth <= item.high, item
        assert not item.drifted, item
    quality = LineConfig.model_validate(learnt.line).stations[1].process.quality
    assert quality is not None
    assert quality.wear_sensitivity == pytest.approx(found[WEAR].value)
    # Stations whose tool does not wear say nothing of wear.
    assert not [m for m in learnt.not_learnt if "wear sensitivity" in m]


def test_a_tool_that_matters_more_is_found_and_called_drift() -> None:
    data = load_config().model_dump(mode="json")
    machining = next(s for s in data["stations"] if s["id"] == "machining")
    machining["process"]["quality"].update(
        {"base_defect_probability": 0.015, "wear_sensitivity": 6.0}
    )
    _, learner = feed_learner(LineConfig.model_validate(data), 72.0, seed=2)
    found = _machining(learn_line(load_config(), learner).parameters)
    for name, truth in ((BASE, 0.015), (WEAR, 6.0)):
        item = found[name]
        assert item.low <= truth <= item.high, item
        assert item.drifted, item


def _curve(learnt_parameters: list[LearnedParameter], station: str) -> dict[str, LearnedParameter]:
    return {
        p.parameter.removeprefix("process.quality."): p
        for p in learnt_parameters
        if p.station == station and p.parameter.startswith("process.quality.")
    }


def test_where_the_setpoints_moved_their_best_values_are_learnt() -> None:
    """Welding's defects are lowest at speed 0.95 and 82 °C in the file; the plant
    runs them at 1.05 and 90 °C, tighter in temperature, and its setpoints are
    moved every hour within their ranges. The learnt curve finds the hidden best
    values and tolerances inside its intervals and calls the moved ones drift; the
    learnt line file carries them."""
    hidden = {"best_speed": 1.05, "best_temperature_c": 90.0, "temperature_tolerance_c": 8.0}
    data = load_config().model_dump(mode="json")
    welding = next(s for s in data["stations"] if s["id"] == "welding")
    welding["process"]["quality"].update(hidden)
    _, learner = feed_learner(LineConfig.model_validate(data), 72.0, seed=4, explore_every_s=3600.0)
    learnt = learn_line(load_config(), learner)
    found = _curve(learnt.parameters, "welding")
    truths = {**hidden, "speed_tolerance": 0.25, "base_defect_probability": 0.008}
    for name, truth in truths.items():
        item = found[name]
        assert item.low <= truth <= item.high, item
    for name in hidden:
        assert found[name].drifted, found[name]
    assert not found["speed_tolerance"].drifted
    assert found["best_speed"].unit == "×"
    assert found["best_temperature_c"].unit == "°C"
    quality = next(s for s in LineConfig.model_validate(learnt.line).stations if s.id == "welding")
    assert quality.process.quality is not None
    assert quality.process.quality.best_temperature_c == pytest.approx(
        found["best_temperature_c"].value
    )
    assert not [m for m in learnt.not_learnt if m.startswith("welding quality curve")]


def test_a_line_run_at_one_speed_keeps_the_files_curve_and_says_why() -> None:
    nominal = load_config()
    _, learner = feed_learner(nominal, 24.0, seed=3)
    learnt = learn_line(nominal, learner)
    found = _curve(learnt.parameters, "welding")
    assert "best_speed" not in found
    assert "base_defect_probability" in found
    said = [m for m in learnt.not_learnt if m.startswith("welding quality curve in speed")]
    assert len(said) == 1
    assert "too few speeds" in said[0]
    welding = next(s for s in LineConfig.model_validate(learnt.line).stations if s.id == "welding")
    assert welding.process.quality is not None
    assert welding.process.quality.best_speed == 0.95  # the file's
