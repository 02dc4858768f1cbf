"""Shadow forecasts: the learnt line and the nominal one, forked from the same
snapshot of the twin, each saying what the line will do; scored once it has.

``shadow_forecast`` runs the baseline what-if (``run_scenario``, no change) of
each model over the same horizon from the same snapshot with the same seeds, so
the two differ only by their line files. Each model's forecast of good parts,
scrap and throughput carries the 95% prediction interval of one run of the
line (``mean -+ t * s * sqrt(1 + 1/n)`` over the replications): what the line
will do, not the interval of the mean. ``score`` sets the line's counters at the
horizon's end beside each model's forecast: the
absolute error in good parts and whether the interval held what the line did.
``summarize`` gives each model's mean absolute error and interval coverage over
the scored forecasts, which is what tells a user whether to trust the twin.

A model given as ``ModelLines`` with draws runs replication i on draw i of its
learnt parameters (``LearnedLine.drawn``), so its interval holds what is not
yet known of the line as well as the line's own spread: an MTBF learnt from
five breakdowns is uncertain by half. Coverage is checked against what the
line did (``bench/calibration.py``), not assumed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from twin.config.line import LineConfig
from twin.experiments.experiment import Mapper
from twin.experiments.whatif import check_bounds, replication_seeds, run_scenario, simulate_from
from twin.experiments.whatif_kpis import KpiForecast, forecast
from twin.learning.line import LearnedLine
from twin.state.snapshot import LineSnapshot, snapshot_from_view
from twin.state.views import LineView

Model = Literal["learned", "nominal"]
MODELS: tuple[Model, ...] = ("learned", "nominal")
# Replications per model and forecast: enough for a t-based prediction interval
# (t(0.975, 7) = 2.36) at a cost of 2 x 8 runs of the horizon.
REPLICATIONS = 8


class Predicted(BaseModel):
    """One figure of one model's forecast: the mean over the replications and the
    95% prediction interval of one run of the line."""

    mean: float
    low: float | None = Field(description="Prediction interval's lower end (null: one run).")
    high: float | None = None


class ModelForecast(BaseModel):
    """What one model says the line will do over the horizon, and, once scored,
    how far off it was."""

    model: Model
    config_hash: str = Field(description="The line file it ran.")
    parameter_draws: bool = Field(
        default=False,
        description="Each replication ran its own draw of the learnt parameters, so the "
        "interval holds their uncertainty as well as the line's own spread.",
    )
    good_parts: Predicted
    scrap_parts: Predicted
    throughput_per_h: Predicted | None = Field(
        description="Good parts per calendar hour; null over a horizon with no planned "
        "production time."
    )
    error_good_parts: float | None = Field(
        default=None, description="|forecast mean - actual| in good parts, once scored."
    )
    covered: bool | None = Field(
        default=None, description="The actual good parts fell inside the interval."
    )


class ShadowForecast(BaseModel):
    """Both models' forecasts from one snapshot, and what the line then did."""

    line: str
    fork_sim_time_s: float
    horizon_s: float
    end_sim_time_s: float
    label: str = Field(description="What the horizon is: 'next hour', 'rest of shift' ...")
    seed: int
    replications: int
    good_at_fork: int
    scrap_at_fork: int
    forecasts: list[ModelForecast]
    status: Literal["waiting", "scored"] = "waiting"
    actual_good_parts: int | None = None
    actual_scrap_parts: int | None = None

    def model(self, name: Model) -> ModelForecast:
        for item in self.forecasts:
            if item.model == name:
                return item
        raise KeyError(name)


def _predicted(found: object) -> Predicted | None:
    mean = getattr(found, "mean", None)
    if mean is None:
        return None
    low, high = getattr(found, "prediction_low", None), getattr(found, "prediction_high", None)
    return Predicted(mean=mean, low=low, high=high)


@dataclass(frozen=True)
class ModelLines:
    """A model's line file and, optionally, one draw of it per replication
    (``LearnedLine.drawn``): the forecast then runs replication i on draw i, so
    its interval holds the uncertainty of the learnt parameters too."""

    config: LineConfig
    draws: Sequence[LineConfig] = ()


def learned_lines(learnt: LearnedLine, seed: int, replications: int = REPLICATIONS) -> ModelLines:
    """The learnt line and ``replications`` draws of its parameters (seeded)."""
    rng = random.Random(seed)  # noqa: S311 - a simulation's draws, not secrets
    return ModelLines(
        LineConfig.model_validate(learnt.line),
        [LineConfig.model_validate(learnt.drawn(rng)) for _ in range(replications)],
    )


def _baseline(
    lines: ModelLines,
    view: LineView,
    horizon_s: float,
    replications: int,
    seed: int,
    backend: Mapper | None,
) -> tuple[LineSnapshot, dict[str, KpiForecast]]:
    """Each KPI's baseline forecast of one model from the view."""
    fork = snapshot_from_view(view, lines.config)
    if not lines.draws:
        result = run_scenario(
            lines.config,
            fork,
            horizon_s=horizon_s,
            replications=replications,
            seed=seed,
            backend=backend,
        )
        return fork, result.kpis
    if len(lines.draws) != replications:
        raise ValueError(f"draws: {len(lines.draws)} line files for {replications} replications")
    check_bounds(horizon_s, replications)
    runs = [
        simulate_from(draw, snapshot_from_view(view, draw), None, horizon_s=horizon_s, seed=s)
        for draw, s in zip(lines.draws, replication_seeds(seed, replications), strict=True)
    ]
    figures = ("good_parts", "scrap_parts", "throughput_per_h")
    return fork, {name: forecast(name, runs, runs, []) for name in figures}


def shadow_forecast(
    view: LineView,
    models: Mapping[Model, LineConfig | ModelLines],
    *,
    horizon_s: float,
    seed: int,
    label: str = "",
    replications: int = REPLICATIONS,
    backend: Mapper | None = None,
) -> ShadowForecast:
    """Each model's baseline forecast over ``horizon_s`` from the twin's ``view``;
    ValueError when the view cannot be forked (no data yet)."""
    forecasts: list[ModelForecast] = []
    fork: LineSnapshot | None = None
    for name, given in models.items():
        lines = given if isinstance(given, ModelLines) else ModelLines(given)
        fork, kpis = _baseline(lines, view, horizon_s, replications, seed, backend)
        good = _predicted(kpis["good_parts"].baseline)
        scrap = _predicted(kpis["scrap_parts"].baseline)
        if good is None or scrap is None:  # counts are defined in every run
            raise ValueError(f"{name}: the forecast counted no parts")
        forecasts.append(
            ModelForecast(
                model=name,
                config_hash=lines.config.config_hash(),
                parameter_draws=bool(lines.draws),
                good_parts=good,
                scrap_parts=scrap,
                throughput_per_h=_predicted(kpis["throughput_per_h"].baseline),
            )
        )
    if fork is None:
        raise ValueError("models: at least one line file is needed")
    return ShadowForecast(
        line=fork.line,
        fork_sim_time_s=fork.sim_time_s,
        horizon_s=horizon_s,
        end_sim_time_s=fork.sim_time_s + horizon_s,
        label=label,
        seed=seed,
        replications=replications,
        good_at_fork=fork.counters.good,
        scrap_at_fork=fork.counters.scrap,
        forecasts=forecasts,
    )


def score(forecast: ShadowForecast, good: int, scrap: int) -> ShadowForecast:
    """``forecast`` scored against the line's counters at the horizon's end
    (``good`` and ``scrap`` as the twin counted them then)."""
    made_good = good - forecast.good_at_fork
    scored = []
    for item in forecast.forecasts:
        low, high = item.good_parts.low, item.good_parts.high
        scored.append(
            item.model_copy(
                update={
                    "error_good_parts": abs(item.good_parts.mean - made_good),
                    "covered": None if low is None or high is None else low <= made_good <= high,
                }
            )
        )
    return forecast.model_copy(
        update={
            "status": "scored",
            "actual_good_parts": made_good,
            "actual_scrap_parts": scrap - forecast.scrap_at_fork,
            "forecasts": scored,
        }
    )


class ModelScore(BaseModel):
    """One model over the scored forecasts."""

    model: Model
    scored: int
    mean_abs_error_good_parts: float | None
    coverage: float | None = Field(
        description="Share of scored forecasts whose prediction interval held the actual."
    )


def summarize(forecasts: list[ShadowForecast]) -> list[ModelScore]:
    """Each model's mean absolute error in good parts and its interval coverage."""
    scores = []
    for name in MODELS:
        mine = [f.model(name) for f in forecasts if f.status == "scored" and _has(f, name)]
        errors = [item.error_good_parts for item in mine if item.error_good_parts is not None]
        held = [item.covered for item in mine if item.covered is not None]
        scores.append(
            ModelScore(
                model=name,
                scored=len(mine),
                mean_abs_error_good_parts=sum(errors) / len(errors) if errors else None,
                coverage=sum(held) / len(held) if held else None,
            )
        )
    return scores


def _has(forecast: ShadowForecast, name: Model) -> bool:
    return any(item.model == name for item in forecast.forecasts)


__all__ = [
    "MODELS",
    "REPLICATIONS",
    "Model",
    "ModelForecast",
    "ModelLines",
    "ModelScore",
    "Predicted",
    "learned_lines",
    "ShadowForecast",
    "score",
    "shadow_forecast",
    "summarize",
]
