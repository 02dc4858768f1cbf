"""Report files: the pieces both run reports (``models.report``,
``models.optimizer.report``) are written with.

A ``Report`` is the directory a report went to and the files written there.
JSON is strict (``jsonable``: numpy to Python, non-finite floats to null);
Markdown tables and numbers are formatted one way for both reports.

Figures are ``matplotlib.figure.Figure`` objects on their own Agg canvas, never
pyplot: no global state, so reports can be written from several threads and
the process's backend is left alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import BaseModel


@dataclass(frozen=True)
class Report:
    """The directory a report was written to and the files written, in order."""

    directory: Path
    files: tuple[Path, ...]

    def path(self, name: str) -> Path:
        for file in self.files:
            if file.name == name:
                return file
        raise KeyError(f"{name!r} is not in the report ({[f.name for f in self.files]})")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON: numpy to Python, non-finite floats to null, models dumped."""
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump())
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n", "utf-8")
    return path


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    return path


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


__all__ = ["Report", "jsonable"]
