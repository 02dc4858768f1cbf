"""A site's plant: every line of a site in one SimPy environment.

Each line is an ordinary ``Plant`` with a seed of its own (``line_seed``), so a
line's randomness does not depend on which other lines share the site. The
lines meet only where the site says they do: a shared repair crew is one
``simpy.Resource`` that every member line's machines queue for, first broken,
first served. A machine that waits for a technician busy on another line stays
``down``, so the sharing shows in each line's down time and availability.

One environment for all lines keeps their clocks together: live mode drives it
with one ``LiveRunner``, batch runs with ``SitePlant.run``.
"""

from __future__ import annotations

from dataclasses import dataclass

import simpy
from simpy.resources.resource import Request

from twin.config.site import LineId, SiteConfig, line_seed
from twin.sim.events import SimTime
from twin.sim.plant import Plant
from twin.sim.report import RunReport, plant_report


@dataclass
class CrewWaits:
    """How often, and how long, one line's breakdowns waited for a shared crew."""

    waits: int = 0
    wait_s: float = 0.0


class CrewShare:
    """One line's access to a shared crew: requests go to the crew's one queue, and
    the time the line's machines wait there is tallied. Ground truth of the
    simulator, for reports and tests: not in the MQTT contract, never published."""

    def __init__(self, crew: simpy.Resource, env: simpy.Environment) -> None:
        self.crew = crew
        self.env = env
        self.tally = CrewWaits()

    def request(self) -> Request:
        request = self.crew.request()
        if not request.triggered:  # every technician is busy, maybe on another line
            asked_at = self.env.now
            self.tally.waits += 1
            request.callbacks.append(lambda _: self._waited(self.env.now - asked_at))
        return request

    def _waited(self, seconds: float) -> None:
        self.tally.wait_s += seconds


class SitePlant:
    """All lines of a site, their shared crews, one environment."""

    def __init__(
        self, site: SiteConfig, *, seed: int = 42, env: simpy.Environment | None = None
    ) -> None:
        self.site = site
        self.seed = seed
        self.env = env if env is not None else simpy.Environment()
        self.crews: dict[str, simpy.Resource] = {
            crew.id: simpy.Resource(self.env, capacity=crew.size)
            for crew in site.shared_repair_crews
        }
        self.plants: dict[LineId, Plant] = {}
        self.crew_shares: dict[LineId, CrewShare] = {}
        for config in site.lines:
            line_id = config.line.id
            crew = site.crew_of(line_id)
            share = None
            if crew is not None:
                share = self.crew_shares[line_id] = CrewShare(self.crews[crew.id], self.env)
            self.plants[line_id] = Plant(
                config, seed=line_seed(seed, line_id), env=self.env, repair_crew=share
            )

    def crew_waits(self) -> dict[LineId, CrewWaits]:
        """Per line sharing a crew: the waits for a technician so far."""
        return {line_id: share.tally for line_id, share in self.crew_shares.items()}

    @property
    def now(self) -> SimTime:
        return float(self.env.now)

    def run(self, until: SimTime) -> None:
        """Advance every line to ``until`` (absolute simulation time)."""
        if until > self.env.now:
            self.env.run(until=until)

    def reports(self, hours: float) -> dict[LineId, RunReport]:
        """Each line's report from its own tallies, as ``factory-twin simulate`` gives it."""
        return {
            line_id: plant_report(plant, seed=line_seed(self.seed, line_id), hours=hours)
            for line_id, plant in self.plants.items()
        }


def simulate_site(site: SiteConfig, *, hours: float, seed: int = 42) -> dict[LineId, RunReport]:
    """Run a site as fast as possible for ``hours`` and report every line."""
    if not hours > 0:
        raise ValueError(f"hours must be > 0 (got {hours})")
    plant = SitePlant(site, seed=seed)
    plant.run(until=hours * 3600.0)
    return plant.reports(hours)
