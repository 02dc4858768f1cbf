"""The running stack with InfluxDB configured: what the embedded store holds
reaches InfluxDB (VictoriaMetrics speaking the v2 write API), sample for sample."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import VictoriaMetrics, get_free_port, wait_until

from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import load_config
from twin.history.store import SqliteStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_stack_copies_its_history_to_influxdb(
    victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> None:
    path = tmp_path / "history.sqlite3"
    stack = Stack(
        load_config(),
        StackOptions(
            speed=600,
            seed=8,
            mqtt_port=get_free_port(),
            history_path=str(path),
            backfill_s=1800,
            kpi_period_s=0.5,
            influx_url=victoria_metrics.url,
            influx_org="factory",
            influx_bucket="twin",
            influx_token="t0ken-for-test",
        ),
    )
    stack.start()
    try:
        # The backfill writes in the background: both origins, once it is done.
        assert stack.history_ready.wait(120), stack.backfill_status()
        assert wait_until(lambda: stack.twin.updates > 50, timeout=30)
    finally:
        stack.stop()  # flushes the store, then the sink delivers and closes

    store = SqliteStore(path, retention_ms=None, retention_every_s=None)
    try:
        stored = store.read_after(0, 10_000_000)
        assert store.count_after(store.mark("influxdb")) == 0, "the sink did not finish"
    finally:
        store.close()
    expected = {
        (
            f"{s.measurement}_{s.field}",
            frozenset((k, v) for k, v in s.tags.items() if v),
            s.time_ms,
        ): s.value
        for s in stored
    }
    assert {key[2] for key in expected}, "nothing stored"
    victoria_metrics.force_flush()
    arrived: dict[tuple[str, frozenset[tuple[str, str]], int], list[float]] = {}
    assert wait_until(
        lambda: len(arrived.update(victoria_metrics.samples()) or arrived) >= len(expected),
        timeout=15,
    )
    assert set(arrived) == set(expected)
    for key, values in arrived.items():
        assert values == [pytest.approx(expected[key])], key
    origins = {dict(labels).get("origin") for _, labels, _ in arrived}
    assert origins == {"live", "backfill"}
