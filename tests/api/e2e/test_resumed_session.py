"""A twin-only twin restarted on its persistent session must still learn its line.

The session keeps the twin's subscription and queues what the line publishes while
the twin is away: nothing is lost across a restart. A broker then need not send the
retained messages again (MQTT 3.1.1 asks it to when a subscription is made again;
the embedded rumqttd does not), and without the line's retained birth a twin that
was given no line file knows no station's order or name, nor the line's calendar:
no WIP, no lead time. The ingest asks for them on a clean session of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import wait_until

from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CNC = Path(__file__).resolve().parents[3] / "examples" / "lines" / "cnc_cell.yaml"


def test_a_twin_that_resumes_its_session_still_gets_the_lines_birth(broker_url: str) -> None:
    config = load_config(CNC)
    info = config.line
    quiet = {"scoring_period_s": 0, "first_training": False}
    plant = Stack(config, StackOptions(speed=120, seed=7, mqtt_url=broker_url, **quiet))
    plant.start()
    try:
        for run in ("first", "resumed"):
            twin = Stack(
                None,
                StackOptions(
                    mqtt_url=broker_url, run_plant=False, persistent_session=True, **quiet
                ),
                line_ref=(info.site, info.area, info.id),
            )
            twin.start()
            try:

                def described(twin: Stack = twin) -> bool:
                    view = twin.twin.view()
                    return view.name == info.name and [
                        (station.id, station.position) for station in view.stations
                    ] == [(spec.id, index) for index, spec in enumerate(config.stations)]

                assert wait_until(described, timeout=60), (run, twin.twin.view().name)
                assert twin.ingest is not None
                # Asked again only on the resumed session: the birth and every state.
                ingest = twin.ingest
                if run == "first":
                    assert ingest.retained_taken == 0
                else:
                    assert wait_until(lambda i=ingest: i.retained_taken >= 1, timeout=30)
            finally:
                twin.stop()
    finally:
        plant.stop()
