"""What the API runs, one line or a whole site: the one protocol both stacks keep.

``api.runtime.line.Stack`` runs one line; ``api.runtime.site.SiteStack`` runs every
line of a site on one broker and one clock. The app, the CLI and the health
endpoint hold either as a ``Runtime`` and never ask which: ``lines`` is every
line's stack (a single line's stack is its own only line), ``first`` the one the
single-line paths (``/twin``, ``/kpis``, ...) serve. ``Starts`` is what the two
do alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from api.history_fill import BackfillStatus
    from api.runtime.line import Stack
    from sensors.broker import EmbeddedBroker
    from sensors.mqtt import BrokerAddress
    from twin.config.site import LineId


class Runtime(Protocol):
    """Started once, stopped once; ``stop`` undoes whatever part of ``start`` ran."""

    @property
    def started(self) -> bool: ...

    @property
    def broker_kind(self) -> str:
        """``embedded (<kind>)`` or ``external``: for the start-up log."""
        ...

    @property
    def address(self) -> BrokerAddress | None:
        """The broker the lines talk to, once started."""
        ...

    @property
    def lines(self) -> Mapping[LineId, Stack]:
        """Every line's stack, in the order of the line or site file."""
        ...

    @property
    def first(self) -> Stack:
        """The line the single-line endpoints serve."""
        ...

    def start(self) -> None:
        """Broker, lines, plant; on any error stops what started, then raises."""
        ...

    def stop(self) -> None: ...

    def stop_plant(self, flush_timeout: float = 1.5) -> None:
        """Stop the live plant and wait (up to ``flush_timeout`` s) for its QoS 1 acks."""
        ...

    def defer_backfill(self) -> None:
        """Hold the history backfill until ``release_backfill`` (the API is up first)."""
        ...

    def release_backfill(self) -> None: ...

    def backfill_status(self) -> BackfillStatus | None:
        """The backfill's progress (every line's as one), or None when none runs."""
        ...


class Starts:
    """A stack's start that undoes itself: ``start`` runs ``_start`` and, if that
    fails part-way (a broker that refuses, a store that cannot open, a signal),
    ``stop`` undoes whatever part ran before the error goes on."""

    broker: EmbeddedBroker | None
    started: bool

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started = True

    @property
    def broker_kind(self) -> str:
        """``embedded (<kind>)`` or ``external``: for the start-up log."""
        return f"embedded ({self.broker.kind})" if self.broker is not None else "external"
