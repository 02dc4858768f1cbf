"""The one row type of the models: a ``PartDataset``, one row per part that left the
line, whatever it came from (history, a simulation, a CSV file; ``models.dataset.parts``
builds it, ``models.dataset.join`` joins it from points).

Features are apart from the labels (``defect``, ``defect_station``) and the oracle's
probability (simulation only), so that no label can leak into a model's inputs.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ColumnType = Literal["int", "float", "str"]

LABEL = "defect"
TIME = "left_at_ms"
PART_ID = "part_id"
DEFECT_STATION = "defect_station"
ORACLE = "oracle_probability"
# The columns of a CSV that are not features, with the types they must have.
META_TYPES: dict[str, ColumnType] = {
    PART_ID: "int",
    TIME: "int",
    LABEL: "int",
    DEFECT_STATION: "str",
    ORACLE: "float",
}
REQUIRED = (TIME, LABEL)


class DatasetError(ValueError):
    """Data that cannot become a dataset; the message names the columns at fault."""


@dataclass(frozen=True)
class PartDataset:
    """One row per part that left the line; features apart from labels and the oracle."""

    feature_names: tuple[str, ...]
    features: FloatArray  # (parts, features), NaN where unknown
    defect: IntArray
    defect_station: npt.NDArray[np.str_]
    part_id: IntArray
    left_at_ms: IntArray
    oracle_probability: FloatArray | None = None

    def __post_init__(self) -> None:
        rows = len(self.defect)
        if self.features.shape != (rows, len(self.feature_names)):
            raise DatasetError(
                f"features have shape {self.features.shape}, expected "
                f"({rows}, {len(self.feature_names)})"
            )

    def __len__(self) -> int:
        return len(self.defect)

    @property
    def columns(self) -> list[str]:
        names = [PART_ID, TIME, *self.feature_names, LABEL, DEFECT_STATION]
        return [*names, ORACLE] if self.oracle_probability is not None else names

    def column(self, name: str) -> npt.NDArray[Any]:
        if name in self.feature_names:
            return self.features[:, self.feature_names.index(name)]
        meta: dict[str, npt.NDArray[Any] | None] = {
            PART_ID: self.part_id,
            TIME: self.left_at_ms,
            LABEL: self.defect,
            DEFECT_STATION: self.defect_station,
            ORACLE: self.oracle_probability,
        }
        found = meta.get(name)
        if found is None:
            raise KeyError(f"no column {name!r}; the columns are {self.columns}")
        return found

    def take(self, rows: npt.NDArray[np.intp] | slice) -> PartDataset:
        oracle = self.oracle_probability
        return PartDataset(
            self.feature_names,
            self.features[rows],
            self.defect[rows],
            self.defect_station[rows],
            self.part_id[rows],
            self.left_at_ms[rows],
            None if oracle is None else oracle[rows],
        )

    def time_split(
        self, test_fraction: float = 0.3, gap: int = 0
    ) -> tuple[PartDataset, PartDataset]:
        """(earlier parts, later parts): train on the past, test on the future. The
        last ``gap`` parts before the cut are left out of both: the parts just before
        the later side share its setpoints and wear, and a scrapped part's unreached
        stations carry the values of parts after it (``models.dataset.parts``)."""
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1 (got {test_fraction})")
        if gap < 0:
            raise ValueError(f"gap must not be negative (got {gap})")
        order = np.argsort(self.left_at_ms, kind="stable")
        cut = round(len(self) * (1 - test_fraction))
        return self.take(order[: max(0, cut - gap)]), self.take(order[cut:])

    def align(self, feature_names: Sequence[str]) -> PartDataset:
        """The same parts with the given feature columns, in that order (NaN where absent):
        to score a dataset with a model trained on another one."""
        columns = [
            self.column(name) if name in self.feature_names else np.full(len(self), np.nan)
            for name in feature_names
        ]
        features = np.column_stack(columns) if columns else np.empty((len(self), 0))
        return PartDataset(
            tuple(feature_names),
            features.astype(np.float64),
            self.defect,
            self.defect_station,
            self.part_id,
            self.left_at_ms,
            self.oracle_probability,
        )

    def csv_schema(self) -> dict[str, ColumnType]:
        """The schema that ``from_csv`` reads this dataset's CSV with."""
        return {name: META_TYPES.get(name, "float") for name in self.columns}

    def to_csv(self, path: str | Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.columns)
            for row in range(len(self)):
                writer.writerow([_cell(self.column(name)[row]) for name in self.columns])


def _cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else repr(float(value))
    return str(value)
