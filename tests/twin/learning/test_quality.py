"""A station's quality curve (``process.quality``), learnt from its parts'
results and the speed, temperature and wear each saw.

The default line's machining scraps more as its tool wears (log-odds rise with
3 x wear²). The learnt curve keeps the file's shape in the setpoints and fits
its base defect probability and wear sensitivity (``logistic_fit``): on the
file's own plant they cover the file's values, on a plant whose tool matters
twice as much they cover the hidden ones and are called drift.
"""

from __future__ import annotations

import numpy as np
import pytest
from feeding import feed_learner

from twin.config.line import LineConfig, load_config
from twin.learning.estimators import logistic_fit
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
        fit = logistic_fit(defective, offset, wear, noise_sd=0.4)
        assert fit.slope is not None
        covered += fit.intercept.covers(-4.5) and fit.slope.covers(3.0)
    # Two 95% intervals together: about 18 of 20, and rarely fewer than 16.
    assert covered >= 16
    with pytest.raises(ValueError, match="both events and non-events"):
        logistic_fit([False] * 10, [0.0] * 10)


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
