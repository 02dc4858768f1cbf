"""What the twin lets in: one stream, plausible times, known stations.

Each test feeds a twin through the real publisher and ingest, then sends what
an earlier run, a broken or a hostile publisher would, and checks that the twin
took none of it: its view is the same, and only a counter moved.
"""

from __future__ import annotations

import json
import time
from typing import Any

from feeding import FedTwin, feed_twin

from sensors.ingest import Ingest
from sensors.mqtt import new_client
from twin.config.line import load_config
from twin.contract import SCHEMA_VERSION
from twin.state.admission import Admission
from twin.state.line import TwinState


def _view(fed: FedTwin) -> dict[str, Any]:
    return fed.twin.view().model_dump()


def _header(source: str, sim_time_s: float, seq: int = 10**9) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "ts_ms": time.time_ns() // 1_000_000,
        "seq": seq,
        "source": source,
        "sim_time_s": sim_time_s,
    }


def _send(fed: FedTwin, station: str, channel: str, payload: dict[str, Any] | str) -> bool:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return fed.ingest.handle(fed.topics.station(station, channel), body.encode())  # type: ignore[arg-type]


def test_a_new_source_starts_a_new_stream() -> None:
    """A restarted plant (a new source) replaces the old run's clock and counts,
    however far ahead the old run's clock was."""
    first = feed_twin(6, seed=1)
    twin = first.twin
    assert (twin.view().sim_time_s or 0) > 5 * 3600
    second = feed_twin(0.5, seed=2, twin=twin)
    view = twin.view()
    assert second.publisher.source != first.publisher.source
    assert view.sim_time_s is not None
    assert view.sim_time_s <= 0.5 * 3600
    assert view.kpis.good == second.plant.parts_shipped
    assert view.kpis.scrap == second.plant.parts_scrapped
    stations = {s.id: s for s in view.stations}
    for station in second.plant.stations:
        assert stations[station.id].good == station.parts_good
        assert stations[station.id].state == station.state
    assert twin.streams == 1


def test_the_old_runs_retained_messages_are_stale() -> None:
    first = feed_twin(2, seed=1)
    second = feed_twin(0.5, seed=2, twin=first.twin)
    before = _view(second)
    stale = {
        **_header(first.publisher.source, 7000.0, seq=5),
        "state": "down",
        "reason": "breakdown",
        "since_sim_time_s": 6900.0,
    }
    assert not _send(second, "welding", "state", stale)
    assert _view(second) == before
    assert second.twin.rejected()["stale_source"] == 1
    assert second.ingest.health()["rejected"]["stale_source"] == 1


def test_a_non_finite_number_changes_nothing_but_a_counter() -> None:
    fed = feed_twin(1, seed=3)
    before = _view(fed)
    source = fed.publisher.source
    sample = json.dumps({**_header(source, 3000.0), "temperature_c": 20.0}).replace(
        '"sim_time_s": 3000.0', '"sim_time_s": Infinity'
    )
    assert not _send(fed, "welding", "telemetry", sample)
    event = json.dumps(
        {
            **_header(source, 3000.0, seq=10**9 + 1),
            "event": "part_finished",
            "part_id": 1,
            "result": "good",
            "processing_time_s": 40.0,
            "exits_line": False,
            "output_buffer_level": None,
            "process": {"speed": 1.0},
        }
    ).replace('"speed": 1.0', '"speed": NaN')
    assert not _send(fed, "welding", "event", event)
    assert _view(fed) == before
    assert fed.ingest.health()["malformed"]["invalid"] == 2


def test_a_far_future_message_changes_nothing_but_a_counter() -> None:
    """An hour ahead of a line announced at its speed pinned a station down and
    dropped OEE from 0.78 to 0.20; now it is refused, and the line goes on."""
    fed = feed_twin(2, seed=4)
    twin = fed.twin
    now = twin.view().sim_time_s
    assert now is not None
    # The line announces its pace as a live line does (60x real time); the batch
    # plant here runs far faster than that, which the pace seen so far allows.
    status = {
        **_header(fed.publisher.source, now, seq=10**6),
        "status": "online",
        "speed_factor": 60.0,
    }
    assert fed.ingest.handle(fed.topics.status, json.dumps(status).encode())
    before = _view(fed)
    ahead = {
        **_header(fed.publisher.source, now + 3600.0),
        "event": "state_changed",
        "machine": 0,
        "from_state": "running",
        "to_state": "down",
        "reason": "breakdown",
    }
    assert not _send(fed, "machining", "event", ahead)
    assert _view(fed) == before
    assert twin.rejected()["future_time"] == 1
    # The line's own messages still move the twin on.
    fed.plant.run(until=now + 600.0)
    after = twin.view()
    assert after.sim_time_s is not None
    assert after.sim_time_s > now
    assert twin.rejected()["future_time"] == 1


def test_messages_for_stations_the_line_lacks_are_dropped() -> None:
    fed = feed_twin(0.5, seed=5)
    before = _view(fed)
    for index in range(50):
        sample = {**_header(fed.publisher.source, 1700.0, seq=index), "temperature_c": 20.0}
        assert not _send(fed, f"ghost-{index}", "telemetry", sample)
    bad_machine = {
        **_header(fed.publisher.source, 1700.0, seq=99),
        "event": "state_changed",
        "machine": 7,
        "from_state": None,
        "to_state": "down",
        "reason": "breakdown",
    }
    assert not _send(fed, "welding", "event", bad_machine)
    assert _view(fed) == before
    assert fed.twin.rejected()["unknown_station"] == 50
    assert fed.twin.rejected()["machine_out_of_range"] == 1


def test_a_twin_without_a_description_admits_stations_up_to_its_limit() -> None:
    config = load_config()
    line = config.line
    twin = TwinState(line.site, line.area, line.id, admission=Admission(max_stations=3))
    fed = FedTwin.__new__(FedTwin)  # only the ingest's path is needed here
    topics = feed_twin(0.01, seed=6).topics
    fed.twin, fed.topics = twin, topics
    fed.ingest = Ingest(twin, topics, new_client("unused"))
    for index in range(10):
        sample = {**_header("gateway-1", 10.0 + index, seq=index), "temperature_c": 20.0}
        _send(fed, f"s{index}", "telemetry", sample)
    assert twin.station_ids() == ["s0", "s1", "s2"]
    assert twin.rejected()["unknown_station"] == 7


def test_made_up_process_names_stop_at_the_bound() -> None:
    """Each process-value name is a history field: a flood of new names per part
    would grow the store without bound."""
    fed = feed_twin(0.5, seed=7)
    known = {s.id: s for s in fed.twin.view().stations}["welding"].process
    limit = fed.twin.admission.max_process_names
    taken = 0
    for index in range(100):
        finished = {
            **_header(fed.publisher.source, 1800.0, seq=10**9 + index),
            "event": "part_finished",
            "part_id": 10**6 + index,
            "result": "good",
            "processing_time_s": 40.0,
            "exits_line": False,
            "output_buffer_level": None,
            "process": {**known, f"made_up_{index}": 1.0},
        }
        taken += _send(fed, "welding", "event", finished)
    assert taken == limit - len(known)
    assert fed.twin.rejected()["process_names"] == 100 - taken
