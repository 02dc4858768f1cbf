"""Training, calibration and test parts, split in time.

Each source of parts (history, a simulation, a CSV) is split on its own by the
time its parts left: the earliest train, the next share calibrates, the latest
are held out for the evaluation and the quality gate. ``SPLIT_GAP`` parts
before each cut are left out, as the tuning's folds leave them out
(``models.tuning``): a part's neighbours share its setpoints and wear, and a
scrapped part's unreached stations carry the values of parts after it. The sources are then put
together, so that a simulation's parts (which start at time 0) never land on
the wrong side of a history's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.dataset.rows import PartDataset

# Parts left out before each cut: a scrapped part carries the values of parts up to
# 50 after it (models.dataset.parts), the tuning's folds leave as many out.
SPLIT_GAP = 50


def concat_parts(datasets: Sequence[PartDataset]) -> PartDataset:
    """The parts of all datasets, in the feature columns of the first; the oracle
    only when every dataset has it."""
    if not datasets:
        raise ValueError("no parts to put together")
    names = datasets[0].feature_names
    aligned = [data.align(names) for data in datasets]
    oracles = [data.oracle_probability for data in aligned]
    return PartDataset(
        names,
        np.concatenate([data.features for data in aligned]),
        np.concatenate([data.defect for data in aligned]),
        np.concatenate([data.defect_station for data in aligned]),
        np.concatenate([data.part_id for data in aligned]),
        np.concatenate([data.left_at_ms for data in aligned]),
        None if any(o is None for o in oracles) else np.concatenate(oracles),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Splits:
    """Training, calibration and test parts, and each source's test parts."""

    train: PartDataset
    calibration: PartDataset
    test: PartDataset
    tests: dict[str, PartDataset]
    calibrations: dict[str, PartDataset] = field(default_factory=dict)
    trains: dict[str, PartDataset] = field(default_factory=dict)

    @property
    def learnt(self) -> PartDataset:
        """The training and calibration parts together: each source's in time order,
        one source after the other (without ``trains``, the training parts then the
        calibration parts)."""
        if not self.trains:
            return concat_parts([self.train, self.calibration])
        return concat_parts(
            [concat_parts([self.trains[name], self.calibrations[name]]) for name in self.trains]
        )

    @property
    def learnt_rate(self) -> float:
        """The defect rate of the parts the model learnt from (fit and calibration):
        what a constant predictor would say."""
        learnt = np.concatenate([self.train.defect, self.calibration.defect])
        return float(learnt.mean()) if len(learnt) else 0.0


def split_gap(parts: int, gap: int = SPLIT_GAP) -> int:
    """The gap left before each cut of ``parts`` parts: ``gap``, but never more than a
    twentieth of them (a small dataset keeps its parts)."""
    return min(gap, parts // 20)


def split_parts(
    sources: Mapping[str, PartDataset],
    test_fraction: float,
    calibration_fraction: float,
    gap: int = SPLIT_GAP,
) -> Splits:
    """Each source split in time (train, calibration, test), with ``split_gap`` parts
    left out before each cut, then put together."""
    trains, calibrations, tests = {}, {}, {}
    for name, parts in sources.items():
        fit, test = parts.time_split(test_fraction, split_gap(len(parts), gap))
        train, calibration = fit.time_split(calibration_fraction, split_gap(len(fit), gap))
        trains[name] = train
        calibrations[name] = calibration
        tests[name] = test
    return Splits(
        concat_parts(list(trains.values())),
        concat_parts(list(calibrations.values())),
        concat_parts(list(tests.values())),
        tests,
        calibrations,
        trains,
    )


def source_name(sources: Mapping[str, PartDataset]) -> str:
    """``history``, ``simulation``, ``csv``, or ``history+simulation``."""
    return "+".join(sorted(sources))


__all__ = ["SPLIT_GAP", "Splits", "concat_parts", "source_name", "split_gap", "split_parts"]
