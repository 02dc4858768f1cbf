"""Shadow forecasts (twin.experiments.shadow): the learnt and the nominal line
forked from the twin of a plant that runs a hidden line, scored against what
the line then did; the horizons a live fork forecasts (api.shadow)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from api.shadow import NEXT_HOUR_S, OPEN_HORIZON_S, horizons
from sensors.loopback import LoopbackLine
from twin.config.line import LineConfig, load_config
from twin.experiments.shadow import (
    ModelForecast,
    Predicted,
    ShadowForecast,
    score,
    shadow_forecast,
    summarize,
)
from twin.learning.line import learn_line
from twin.learning.observer import LineLearner
from twin.state.clock import describe_calendar, shift_end_s

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))
from calibration import hidden_line  # noqa: E402 - the benchmark's hidden line

HOUR = 3600.0


def _forecast(mean: float, low: float, high: float, good_at_fork: int) -> ShadowForecast:
    def model(name: str, shift: float) -> ModelForecast:
        return ModelForecast(
            model=name,  # type: ignore[arg-type]
            config_hash=name,
            good_parts=Predicted(mean=mean + shift, low=low + shift, high=high + shift),
            scrap_parts=Predicted(mean=1.0, low=0.0, high=3.0),
            throughput_per_h=None,
        )

    return ShadowForecast(
        line="line1",
        fork_sim_time_s=0.0,
        horizon_s=HOUR,
        end_sim_time_s=HOUR,
        label="next hour",
        seed=1,
        replications=8,
        good_at_fork=good_at_fork,
        scrap_at_fork=2,
        forecasts=[model("learned", 0.0), model("nominal", 20.0)],
    )


def test_score_sets_what_the_line_made_beside_each_forecast() -> None:
    # The line made 150 - 100 = 50 good parts and 5 - 2 = 3 scrap in the horizon.
    scored = score(_forecast(48.0, 40.0, 56.0, good_at_fork=100), good=150, scrap=5)
    assert scored.status == "scored"
    assert (scored.actual_good_parts, scored.actual_scrap_parts) == (50, 3)
    learned, nominal = scored.model("learned"), scored.model("nominal")
    assert learned.error_good_parts == pytest.approx(2.0)
    assert learned.covered is True
    assert nominal.error_good_parts == pytest.approx(18.0)  # 68 against 50
    assert nominal.covered is False  # 60..76 leaves 50 out


def test_summarize_averages_the_errors_and_counts_the_covered() -> None:
    scored = [
        score(_forecast(48.0, 40.0, 56.0, good_at_fork=0), good=50, scrap=2),  # error 2, in
        score(_forecast(48.0, 40.0, 56.0, good_at_fork=0), good=60, scrap=2),  # error 12, out
        _forecast(48.0, 40.0, 56.0, good_at_fork=0),  # waiting: not counted
    ]
    scores = {item.model: item for item in summarize(scored)}
    assert scores["learned"].scored == 2
    assert scores["learned"].mean_abs_error_good_parts == pytest.approx(7.0)
    assert scores["learned"].coverage == pytest.approx(0.5)
    # nominal: 68 against 50 and 60
    assert scores["nominal"].mean_abs_error_good_parts == pytest.approx(13.0)
    assert scores["nominal"].coverage == pytest.approx(0.5)  # 60..76 holds 60, not 50


def test_the_shift_ends_at_the_next_long_planned_stop() -> None:
    calendar = load_config().calendar
    assert calendar is not None
    described = describe_calendar(calendar)
    # The default line: sim time 0 is 06:00; the shift runs to 22:00 (breaks of
    # 30 min at 10:00 and 18:00 do not end it).
    assert shift_end_s(described, 2 * HOUR) == pytest.approx(16 * HOUR)
    assert shift_end_s(described, 24 * HOUR + 5 * HOUR) == pytest.approx(40 * HOUR)
    assert shift_end_s(described, 17 * HOUR) is None  # 23:00: no shift


def test_a_fork_forecasts_the_next_hour_and_the_rest_of_the_shift() -> None:
    line = LoopbackLine(load_config(), 3, lambda station, message: None)
    line.run_until(2 * HOUR)  # 08:00
    spans = dict(horizons(line.twin.view()))
    now = line.twin.view().sim_time_s or 0.0
    assert spans == {"next hour": NEXT_HOUR_S, "rest of shift": pytest.approx(16 * HOUR - now)}
    line.run_until(15.5 * HOUR)  # 21:30: the shift ends in half an hour
    assert dict(horizons(line.twin.view())) == {"next hour": NEXT_HOUR_S}


def test_a_line_with_no_calendar_forecasts_the_next_eight_hours() -> None:
    data = load_config().model_dump()
    data["calendar"] = None
    line = LoopbackLine(LineConfig.model_validate(data), 3, lambda station, message: None)
    line.run_until(HOUR)
    assert dict(horizons(line.twin.view())) == {
        "next hour": NEXT_HOUR_S,
        "next 8 h": OPEN_HORIZON_S,
    }


@pytest.mark.slow
def test_the_learnt_line_forecasts_what_the_hidden_line_does() -> None:
    """A plant runs the hidden line (machining 12% slower, welding fails twice as
    often and takes twice as long to repair, inspection scraps twice as much).
    Forked at 06:00 and 14:00 of day 2 and 06:00 of day 3, forecasting 8 h each, the line learnt
    from the stream is closer to the good parts the line then made than the line
    file is, over the three; each actual is the twin's count at the horizon's end."""
    nominal = load_config()
    learner = LineLearner()
    line = LoopbackLine(hidden_line(nominal), 1, learner.observe)
    scored: list[ShadowForecast] = []
    for fork_h in (24.0, 32.0, 48.0):
        line.run_until(fork_h * HOUR)
        learnt = LineConfig.model_validate(learn_line(nominal, learner).line)
        view = line.twin.view()
        forecast = shadow_forecast(
            view,
            {"learned": learnt, "nominal": nominal},
            horizon_s=8 * HOUR,
            seed=int(fork_h),
            label="next 8 h",
        )
        assert forecast.good_at_fork == view.kpis.good
        line.run_until(forecast.end_sim_time_s)
        after = line.twin.view()
        checked = score(forecast, after.kpis.good, after.kpis.scrap)
        assert checked.actual_good_parts == after.kpis.good - view.kpis.good
        scored.append(checked)
    # The two models ran the same seeds from the same snapshot: they differ by file.
    first = scored[0]
    assert first.model("learned").config_hash != first.model("nominal").config_hash
    scores = {item.model: item for item in summarize(scored)}
    learned = scores["learned"].mean_abs_error_good_parts
    nominal_error = scores["nominal"].mean_abs_error_good_parts
    assert learned is not None
    assert nominal_error is not None
    assert learned < nominal_error, (learned, nominal_error)
    # The slower machining shows: the file forecasts more good parts every time.
    for forecast in scored:
        assert forecast.model("nominal").good_parts.mean > forecast.model("learned").good_parts.mean
