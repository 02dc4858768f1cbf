"""What the sensor watch saw and expected, kept for the trend around an alarm.

``SensorTrace`` keeps one sensor's recent readings and expectations in bins of
``bin_s`` seconds of line time: the readings' mean, least and greatest, and, over
the readings the watch judged, the mean expectation and the mean prediction
spread. ``keep`` bins are kept (a day of minutes by default); older ones go.

The expectation is the one each reading was judged against: the learned
response plus the sensor's slow level (``models.anomaly.watch``). A bin whose
readings were none judged (the station did what clean history never showed, a
response still anchoring) has readings and no expectation.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

BIN_S = 60.0
KEEP_BINS = 1440


@dataclass(frozen=True, slots=True)
class TracePoint:
    """One bin: from ``start_s`` (line time) for ``bin_s`` seconds."""

    start_s: float
    readings: int
    reading: float
    lowest: float
    highest: float
    expected: float | None
    spread: float | None


class _Bin:
    __slots__ = ("count", "expected", "highest", "index", "judged", "lowest", "spread", "total")

    def __init__(self, index: int) -> None:
        self.index = index
        self.count = 0
        self.total = 0.0
        self.lowest = math.inf
        self.highest = -math.inf
        self.judged = 0
        self.expected = 0.0
        self.spread = 0.0


class SensorTrace:
    """One sensor's readings and expectations, binned on the line's clock."""

    def __init__(self, bin_s: float = BIN_S, keep: int = KEEP_BINS) -> None:
        if not bin_s > 0 or keep < 1:
            raise ValueError(f"bin_s must be > 0 and keep >= 1 (got {bin_s!r}, {keep!r})")
        self.bin_s = bin_s
        self._bins: deque[_Bin] = deque(maxlen=keep)

    def _bin(self, at_s: float) -> _Bin | None:
        index = math.floor(at_s / self.bin_s)
        bins = self._bins
        if bins and bins[-1].index == index:
            return bins[-1]
        if bins and index < bins[-1].index:
            # Late: its bin if still kept, else dropped (never out of order).
            for kept in reversed(bins):
                if kept.index == index:
                    return kept
                if kept.index < index:
                    break
            return None
        bins.append(_Bin(index))
        return bins[-1]

    def read(self, at_s: float, value: float) -> None:
        """A reading at ``at_s``."""
        held = self._bin(at_s)
        if held is None:
            return
        held.count += 1
        held.total += value
        held.lowest = min(held.lowest, value)
        held.highest = max(held.highest, value)

    def expect(self, at_s: float, expected: float, spread: float) -> None:
        """What the reading at ``at_s`` was judged against (after ``read``)."""
        held = self._bin(at_s)
        if held is None:
            return
        held.judged += 1
        held.expected += expected
        held.spread += spread

    def points(self, from_s: float = -math.inf, to_s: float = math.inf) -> list[TracePoint]:
        """The bins that overlap ``from_s`` to ``to_s``, oldest first."""
        out: list[TracePoint] = []
        for held in self._bins:
            start = held.index * self.bin_s
            if start + self.bin_s <= from_s or start > to_s or not held.count:
                continue
            judged = held.judged
            out.append(
                TracePoint(
                    start,
                    held.count,
                    held.total / held.count,
                    held.lowest,
                    held.highest,
                    held.expected / judged if judged else None,
                    held.spread / judged if judged else None,
                )
            )
        return out
