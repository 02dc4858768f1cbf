"""A recommendation's figures: what one run of the line will do, per calendar hour.

The interval shown beside a recommendation is a prediction interval for one
run of the horizon. Checked against what the line then did: fresh runs of the
same setpoints fall inside it about as often as it says, far more often than
inside the confidence interval of the mean, which the same replications give.
"""

from __future__ import annotations

import statistics

import pytest

from models.optimizer.confirmation import (
    OBJECTIVE_FIELD,
    confirm,
    current_setpoints,
    looks_at,
    mean_interval,
    objective_unit,
    prediction_interval,
)
from models.optimizer.space import configure
from twin.config.line import load_config
from twin.experiments.experiment import experiment_field, run_experiment

HOURS = 8.0


def test_the_prediction_interval_covers_what_the_line_then_did() -> None:
    config = load_config()
    setpoints = {"machining.speed": 1.2, "welding.temperature_c": 80.0}
    answer = confirm(
        config,
        "good_per_hour",
        setpoints,
        current_setpoints(config, list(setpoints)),
        hours=HOURS,
        replications=6,
        seed=101,
    )
    predicted = answer.recommended
    assert predicted.low is not None
    assert predicted.high is not None
    # What the line then did: 40 runs on seeds the interval never saw.
    later = run_experiment(configure(config, setpoints), hours=HOURS, seed=90_210, replications=40)
    outcomes = [run.line_kpis.throughput_per_h or 0.0 for run in later.runs]
    inside = sum(predicted.low <= value <= predicted.high for value in outcomes)
    # A 95% prediction interval from 6 runs covers a fresh run 95% of the time on
    # average over the 6; 40 runs give a binomial spread of about 3.5%. 80% leaves
    # room for an unlucky six, and fails a confidence interval of the mean, which
    # is 2.6 times narrower here and covers about half of the runs.
    assert inside / len(outcomes) >= 0.80, (predicted, sorted(outcomes))
    narrow = mean_interval(
        [
            run.line_kpis.throughput_per_h or 0.0
            for run in run_experiment(
                configure(config, setpoints), hours=HOURS, seed=101, replications=6
            ).runs
        ]
    )
    assert narrow.low is not None
    assert narrow.high is not None
    covered_by_mean_interval = sum(narrow.low <= value <= narrow.high for value in outcomes)
    assert covered_by_mean_interval < inside


def test_the_figures_are_per_calendar_hour_and_paired() -> None:
    config = load_config()
    current = current_setpoints(config, ["machining.speed", "welding.temperature_c"])
    assert current == {
        "machining.speed": config.stations[1].process.speed.default,
        "welding.temperature_c": config.stations[2].process.temperature_c.default,  # type: ignore[union-attr]
    }
    answer = confirm(
        config,
        "good_per_hour",
        {"machining.speed": 0.8, "welding.temperature_c": 85.0},
        current,
        hours=24.0,
        replications=3,
        seed=7,
    )
    assert answer.unit == objective_unit("good_per_hour", "EUR") == "good parts per calendar hour"
    # Per calendar hour: the runs' good parts over the whole 24 h, nights included.
    runs = run_experiment(configure(config, current), hours=24.0, seed=7, replications=3).runs
    assert answer.current.mean == pytest.approx(
        sum(run.line_kpis.good for run in runs) / (3 * 24.0)
    )
    # The default line plans 16 of 24 h minus two half-hour breaks (15 h).
    assert answer.planned_share == pytest.approx(15 / 24, abs=0.02)
    assert answer.difference.mean == pytest.approx(answer.recommended.mean - answer.current.mean)
    assert answer.recommended.mean < answer.current.mean  # machining slowed: fewer parts


def test_intervals_need_two_runs() -> None:
    single = prediction_interval([3.0])
    assert (single.mean, single.low, single.high) == (3.0, None, None)
    pair = prediction_interval([1.0, 3.0])
    assert pair.low is not None
    assert pair.high is not None
    assert pair.low < 1.0
    assert pair.high > 3.0
    with pytest.raises(ValueError, match="objective"):
        confirm(load_config(), "speed", {}, {}, hours=1, replications=2)


def test_todays_setpoints_again_are_no_gain_and_the_verdict_is_keep() -> None:
    config = load_config()
    current = current_setpoints(config, ["machining.speed", "welding.temperature_c"])
    answer = confirm(
        config, "good_per_hour", dict(current), current, hours=HOURS, replications=4, seed=3
    )
    assert answer.difference.mean == 0.0
    assert answer.verdict == "keep"
    assert answer.setpoints == current


def test_a_clear_gain_is_a_change_to_the_best_candidate_by_mean() -> None:
    config = load_config()
    keys = ["machining.speed", "welding.temperature_c"]
    current = current_setpoints(config, keys)
    machining = next(s for s in config.stations if s.id == "machining").process.speed
    slowest = {**current, "machining.speed": machining.min}
    faster = {**current, "machining.speed": 1.1}
    fastest_good = {**current, "machining.speed": 1.2}
    answer = confirm(
        config,
        "good_per_hour",
        faster,
        slowest,  # today's bottleneck held at its slowest
        hours=HOURS,
        replications=6,
        seed=11,
        alternatives=[fastest_good, faster],  # a repeat is run once
    )
    assert answer.candidates == 2
    # Every candidate ran on the same seeds; the one with the best mean is chosen.
    means = {
        speed: statistics.fmean(
            run.line_kpis.throughput_per_h or 0.0
            for run in run_experiment(
                configure(config, {**current, "machining.speed": speed}),
                hours=HOURS,
                seed=11,
                replications=6,
            ).runs
        )
        for speed in (1.1, 1.2)
    }
    best_speed = max(means, key=lambda speed: means[speed])
    assert answer.setpoints["machining.speed"] == best_speed
    assert answer.recommended.mean == pytest.approx(means[best_speed])
    # Two candidates share the 5% error: each difference at 97.5%.
    assert answer.confidence == pytest.approx(0.975)
    assert answer.difference.low is not None
    assert answer.difference.low > 0
    assert answer.verdict == "change"
    wider = mean_interval([answer.difference.mean + d for d in (-1.0, 1.0, 0.5)], confidence=0.975)
    narrower = mean_interval([answer.difference.mean + d for d in (-1.0, 1.0, 0.5)])
    assert wider.low is not None
    assert narrower.low is not None
    assert wider.low < narrower.low


def test_the_looks_double_up_to_the_cap() -> None:
    assert looks_at(16, 16) == [16]
    assert looks_at(16, 64) == [16, 32, 64]
    assert looks_at(16, 100) == [16, 32, 64, 100]
    assert looks_at(5, 6) == [5, 6]
    with pytest.raises(ValueError, match="max_replications must be >= replications"):
        confirm(load_config(), "good_per_hour", {}, {}, hours=1, replications=8, max_replications=4)


@pytest.mark.parametrize(
    ("objective", "today_speed"),
    [("good_per_hour", None), ("margin_per_hour", None), ("good_per_hour", 0.7)],
    ids=["good, a small gain", "margin, a small gain", "good, a clear gain"],
)
def test_a_sequential_confirmation_stops_at_the_first_clear_look(
    objective: str, today_speed: float | None
) -> None:
    config = load_config()
    keys = ["machining.speed", "welding.temperature_c"]
    current = current_setpoints(config, keys)
    if today_speed is not None:  # today's bottleneck slowed down: any faster is clearly better
        current["machining.speed"] = today_speed
    faster = {**current, "machining.speed": 1.1}
    answer = confirm(
        config, objective, faster, current, hours=24.0, replications=4, max_replications=64, seed=5
    )
    looks = [4, 8, 16, 32, 64]
    # One candidate, five planned looks: each look's interval at 1 - 5% / 5.
    assert answer.looks == len(looks)
    assert answer.confidence == pytest.approx(0.99)
    assert answer.replications in looks
    field = OBJECTIVE_FIELD[objective]

    def runs(setpoints: dict[str, float]) -> list[float]:
        one_long_run = run_experiment(
            configure(config, setpoints), hours=24.0, seed=5, replications=answer.replications
        ).runs
        return [experiment_field(run, field) or 0.0 for run in one_long_run]

    # The runs added at each look are the same seeds as one run of that many.
    differences = [a - b for a, b in zip(runs(faster), runs(current), strict=True)]
    assert answer.difference.mean == pytest.approx(statistics.fmean(differences))
    for count in looks[: looks.index(answer.replications) + 1]:
        interval = mean_interval(differences[:count], 0.99)
        assert interval.low is not None
        assert interval.high is not None
        clear = interval.low > 0 or interval.high < 0
        if count < answer.replications:
            assert not clear, (count, interval)  # it went on only while 0 was inside
        else:
            assert clear or count == looks[-1], (count, interval)
            assert answer.difference.low == pytest.approx(interval.low)
            assert answer.verdict == ("change" if interval.low > 0 else "keep")
