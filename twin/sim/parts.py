"""The parts that flow through the plant and the buffers between its stations.

Buffers are SimPy stores with finite capacity and blocking after service. A
reworked part rejoins its target station's buffer at the head of the queue and
may exceed the capacity for that moment: rework loops into full buffers would
otherwise deadlock the line, and real lines keep a rework rack beside it.
"""

from __future__ import annotations

import simpy

from twin.sim.events import PartId, SimTime


class Part:
    __slots__ = ("id", "product", "released_at", "reworks")

    def __init__(self, part_id: PartId, product: str, released_at: SimTime) -> None:
        self.id = part_id
        self.product = product
        self.released_at = released_at
        self.reworks = 0


class Buffer(simpy.Store):
    """A finite FIFO buffer; reworked parts jump the queue (and the capacity)."""

    def put_rework(self, part: Part) -> None:
        self.items.insert(0, part)
        self._trigger_get(None)
