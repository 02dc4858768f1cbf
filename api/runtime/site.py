"""The composition root of a site: one broker, one simulated site, a stack per line.

A site runs every line's plant in one realtime SimPy environment
(``twin.sim.site_plant.SitePlant``) driven by one ``LiveRunner``, so shared
resources such as a repair crew are shared for real. Everything else is per
line, exactly as ``api.runtime.line.Stack`` does it for a single line: each line has
its own publisher (its own MQTT client, birth message and last will on its
own branch of the ISA-95 tree), ingest, twin state, command handler, history
store, KPI sampler and live scoring. The line stacks are ordinary ``Stack``
objects handed their plant and the shared runner.

Start order: the broker (embedded unless a URL is given), then each line's
stack (history, ingest subscribed, publisher's birth message, commands), then
the shared runner. Stop order is the reverse: the runner stops first, every
line flushes its QoS 1 messages and says goodbye, then the broker stops.

Consequences worth knowing:

- ``pause``, ``resume`` and ``set_speed`` sent to any line's command topic act
  on the shared runner, so on the whole site: the lines share one clock.
- Each line has its own history file: ``history.sqlite3`` becomes
  ``history-{line_id}.sqlite3`` beside it.
- A backfill simulates each line alone, with its own ``repair_crew``: the
  shared crew shapes the live history, not the imported one. The lines'
  backfills run in the background, one after another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from api.history_fill import BackfillState, BackfillStatus
from api.runtime.line import Stack, start_embedded_broker
from api.runtime.options import StackOptions
from api.runtime.protocol import Starts
from sensors.broker import EmbeddedBroker
from sensors.mqtt import BrokerAddress
from twin.config.site import LineId, SiteConfig, line_seed
from twin.sim.live import LiveRunner, realtime_environment
from twin.sim.site_plant import SitePlant

log = logging.getLogger(__name__)


def line_history_path(path: str | None, line_id: LineId) -> str | None:
    """The history file of one line of a site: ``history-{line_id}.sqlite3`` beside it."""
    if path is None:
        return None
    file = Path(path)
    return str(file.with_name(f"{file.stem}-{line_id}{file.suffix}"))


@dataclass
class SiteStack(Starts):
    """Everything behind the API, for every line of a site."""

    site: SiteConfig
    options: StackOptions = field(default_factory=StackOptions)

    def __post_init__(self) -> None:
        self.lines: dict[LineId, Stack] = {
            config.line.id: Stack(config, self._line_options(config.line.id))
            for config in self.site.lines
        }
        self.broker: EmbeddedBroker | None = None
        self.plant: SitePlant | None = None
        self.runner: LiveRunner | None = None
        self.started = False

    def _line_options(self, line_id: LineId) -> StackOptions:
        options = self.options
        client_id = options.ingest_client_id
        return replace(
            options,
            seed=line_seed(options.seed, line_id),
            history_path=line_history_path(options.history_path, line_id),
            # Every line's ingest needs a client id of its own, or the broker would
            # drop one when the next connects.
            ingest_client_id=f"{client_id}-{line_id}" if client_id else None,
            # The lines share one registry, whose "defect" model fits one line's
            # features: no line trains it on its own at start.
            first_training=False,
        )

    @property
    def first(self) -> Stack:
        """The first line of the site file: the one the single-line endpoints serve."""
        return next(iter(self.lines.values()))

    @property
    def address(self) -> BrokerAddress | None:
        return self.first.address

    def backfill_status(self) -> BackfillStatus | None:
        """Every line's backfill as one: backfilling while any line is (they take
        turns), failed if one failed, off if all are off."""
        found = [s for stack in self.lines.values() if (s := stack.backfill_status()) is not None]
        if not found:
            return None
        states = {status.state for status in found}
        state: BackfillState = next(
            (s for s in ("backfilling", "failed", "stopped") if s in states),
            "off" if states == {"off"} else "done",
        )
        walls = [status.wall_s for status in found if status.wall_s is not None]
        return BackfillStatus(
            state,
            simulated_s_done=sum(status.simulated_s_done for status in found),
            simulated_s_total=sum(status.simulated_s_total for status in found),
            wall_s=max(walls) if walls else None,
            error=next((status.error for status in found if status.error), None),
        )

    def defer_backfill(self) -> None:
        for stack in self.lines.values():
            stack.defer_backfill()

    def release_backfill(self) -> None:
        for stack in self.lines.values():
            stack.release_backfill()

    def _start(self) -> None:
        options = self.options
        if options.mqtt_url:
            url = options.mqtt_url
        else:
            self.broker = start_embedded_broker(options)
            url = self.broker.url
        if options.run_plant:
            env = realtime_environment(options.speed)
            self.plant = SitePlant(self.site, seed=options.seed, env=env)
            self.runner = LiveRunner(env, options.speed)
        for line_id, stack in self.lines.items():
            stack.options = replace(stack.options, mqtt_url=url)
            if self.broker is not None:
                # The embedded broker speaks plain MQTT, as a single line's stack assumes.
                stack.options = replace(
                    stack.options, mqtt_ca_file=None, mqtt_cert_file=None, mqtt_key_file=None
                )
            if self.plant is not None:
                stack.shared_plant = self.plant.plants[line_id]
                stack.shared_runner = self.runner
            stack.start()
        if self.runner is not None:
            self.runner.start()
            log.info(
                "site %s: %d lines started in one environment, speed asked %gx real time "
                "(the pace follows the pipeline)",
                self.site.site.id,
                len(self.lines),
                options.speed,
            )

    def stop_plant(self, flush_timeout: float = 1.5) -> None:
        """Stop the site's plant and wait until every line's QoS 1 messages are acknowledged."""
        if self.runner is not None:
            self.runner.stop()
        for stack in self.lines.values():
            stack.stop_plant(flush_timeout)

    def stop(self) -> None:
        self.started = False
        self.stop_plant()
        for stack in reversed(self.lines.values()):
            stack.stop()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
