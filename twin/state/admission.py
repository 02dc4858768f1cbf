"""What the twin lets in: one stream at a time, plausible times, known stations.

A line's messages are only as good as their publisher. The twin takes a message
only when it belongs to the line's live stream, carries a time that can be true,
and is about a station the line has; anything else is counted by reason and left
out, so that one stale, broken or hostile message never moves the twin's clock
or grows its memory (docs/mqtt.md, "What the twin lets in").

- **One stream.** Every payload names its ``source``, new at each start of a
  publisher. The live source is the one whose retained status last said
  ``online`` (the birth message); before any birth, the first source heard.
  A birth with a new source starts a new stream: the twin forgets the old
  one's clock and accounting. Messages of any other source (an earlier run's
  retained states, a second publisher on the line's topics) are *stale*.
- **Plausible time.** Each payload carries the wall clock of its publishing
  (``ts_ms``) beside its simulation time. From the stream's last accepted
  message (or its birth), the stream's pace (its announced speed, or the pace
  seen so far, at least real time) says how far the simulation time can have
  moved by the message's ``ts_ms``; a message more than ``tolerance_s`` ahead of
  that is *from the future* and is refused, and so is one stamped more than
  ``max_clock_skew_s`` ahead of this machine's clock. Non-finite numbers never
  get this far: the contract refuses them.
- **Known stations.** The stations are those the line describes in its birth
  message, or those of the line file the twin was started with; without
  either, new stations are admitted up to ``max_stations``. A machine index is
  admitted below the station's described machine count (else ``max_machines``),
  and a part's process values only while the station's distinct names stay
  within ``max_process_names`` (each name is a history field).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# Sim seconds a message may run ahead of the stream's clock before the wall
# clock has moved: a broker or outbox may hold messages back and release them
# together, and the plant's topics arrive in no fixed order.
DEFAULT_FUTURE_TOLERANCE_S = 600.0
# A publisher's wall clock may be this far ahead of ours (a real gateway's drift).
DEFAULT_MAX_CLOCK_SKEW_S = 300.0
# Without a description or a line file: a line of more stations than this is a flood.
DEFAULT_MAX_STATIONS = 256
# The line config's own ceiling on machines per station.
DEFAULT_MAX_MACHINES = 1000

# Distinct process-value names per station (each is a history field): a line has
# its setpoints and wear; a flood of made-up names stops here.
DEFAULT_MAX_PROCESS_NAMES = 32

REJECTION_REASONS = (
    "stale_source",
    "future_time",
    "unknown_station",
    "machine_out_of_range",
    "process_names",
)


@dataclass
class Admission:
    """The rules and their counters; the twin state holds one and asks it under its lock."""

    future_tolerance_s: float | None = DEFAULT_FUTURE_TOLERANCE_S
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S
    max_stations: int = DEFAULT_MAX_STATIONS
    max_machines: int = DEFAULT_MAX_MACHINES
    max_process_names: int = DEFAULT_MAX_PROCESS_NAMES
    wall_ms: Callable[[], float] = field(default=lambda: time.time() * 1000.0)
    rejected: Counter[str] = field(default_factory=Counter)
    source: str | None = None
    known_stations: frozenset[str] | None = None
    # (ts_ms, sim_time_s) of the stream's first and latest reference point.
    _first: tuple[float, float] | None = None
    _latest: tuple[float, float] | None = None

    def set_stations(self, stations: Iterable[str] | None) -> None:
        self.known_stations = None if stations is None else frozenset(stations)

    # -- streams -------------------------------------------------------------------------
    def is_new_stream(self, source: str) -> bool:
        """A birth from ``source``: True when it starts a new stream (the caller resets)."""
        new = self.source is not None and source != self.source
        self.source = source
        if new:
            self._first = self._latest = None
        return new

    def from_stream(self, source: str) -> bool:
        """Whether a message of ``source`` belongs to the live stream (counted if not)."""
        if self.source is None:
            self.source = source
            return True
        if source == self.source:
            return True
        self.rejected["stale_source"] += 1
        return False

    # -- time ----------------------------------------------------------------------------
    def plausible(self, sim_time: float, ts_ms: int, speed: float | None) -> bool:
        """Whether a message stamped ``ts_ms`` can be at ``sim_time`` (counted if not)."""
        if self.future_tolerance_s is None:
            return True
        if ts_ms > self.wall_ms() + self.max_clock_skew_s * 1000.0:
            self.rejected["future_time"] += 1
            return False
        latest = self._latest
        if latest is None or sim_time <= latest[1]:
            return True
        observed = self._observed_pace()
        if speed is None and observed == 0.0:
            return True  # no pace known yet (a line that announces none): nothing to judge by
        pace = max(1.0, speed or 0.0, observed)
        allowed = latest[1] + self.future_tolerance_s + pace * max(0.0, ts_ms - latest[0]) / 1000
        if sim_time <= allowed:
            return True
        self.rejected["future_time"] += 1
        return False

    def reference(self, ts_ms: int, sim_time: float) -> None:
        """An accepted message (or a birth) at ``sim_time``, published at ``ts_ms``."""
        if self._first is None:
            self._first = (float(ts_ms), sim_time)
        if self._latest is None or sim_time >= self._latest[1]:
            self._latest = (float(ts_ms), sim_time)

    def _observed_pace(self) -> float:
        if self._first is None or self._latest is None:
            return 0.0
        wall_s = (self._latest[0] - self._first[0]) / 1000.0
        return (self._latest[1] - self._first[1]) / wall_s if wall_s >= 1.0 else 0.0

    # -- stations ------------------------------------------------------------------------
    def admits_station(self, station_id: str, present: int, exists: bool) -> bool:
        if exists:
            return True
        if self.known_stations is not None:
            admitted = station_id in self.known_stations
        else:
            admitted = present < self.max_stations
        if not admitted:
            self.rejected["unknown_station"] += 1
        return admitted

    def admits_machine(self, machine: int, described: int | None) -> bool:
        limit = described if described is not None else self.max_machines
        if 0 <= machine < limit:
            return True
        self.rejected["machine_out_of_range"] += 1
        return False

    def admits_process_names(self, seen: set[str], names: Iterable[str]) -> bool:
        """Whether a part's process values keep the station's names within the bound;
        ``seen`` (the station's names so far) grows when they do."""
        new = set(names) - seen
        if len(seen) + len(new) > self.max_process_names:
            self.rejected["process_names"] += 1
            return False
        seen |= new
        return True

    def counts(self) -> dict[str, int]:
        return {reason: self.rejected[reason] for reason in REJECTION_REASONS}


__all__ = [
    "DEFAULT_FUTURE_TOLERANCE_S",
    "DEFAULT_MAX_CLOCK_SKEW_S",
    "DEFAULT_MAX_MACHINES",
    "DEFAULT_MAX_STATIONS",
    "REJECTION_REASONS",
    "Admission",
]
