"""Imported history in the background: the live line and the backfill share one store.

Real stacks (embedded broker, live plant, ingest, store) with a backfill long
enough to watch. The claims: the API answers while the backfill runs and
``/healthz`` says so with its progress; live data written meanwhile is neither
lost nor duplicated, and the store holds exactly the backfill (equal, sample for
sample, to the same span simulated in this process) plus the live data, apart in
time; a restart fills only what is missing, including what a stopped backfill
left; the history-ready hook fires once, when the points are on disk.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import REPO, chromium, get_free_port, serve_in_thread, wait_until, watched_page

from api.app import create_app
from api.history_fill import BackfillPlan, BackfillStatus, plan_backfill
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from sensors.backfill import simulate_history
from sensors.topics import LineTopics
from twin.config.line import LineConfig, load_config
from twin.history.points import HistoryWriter, Point
from twin.history.store import SqliteStore

DAY_S = 86_400.0
LINES = {
    "default": None,
    "smt": REPO / "examples" / "lines" / "smt.yaml",
}
# origin, measurement, field, the other tags, time, value
Sample = tuple[str, str, str, tuple[tuple[str, str], ...], int, float]


def sample_of(
    origin: str, point_measurement: str, field: str, tags: object, time_ms: int, value: float
) -> Sample:
    assert isinstance(tags, dict)
    where = tuple(sorted((k, v) for k, v in tags.items() if k != "origin"))
    return (origin, point_measurement, field, where, time_ms, value)


def options(tmp_path: Path, **changes: object) -> StackOptions:
    base = StackOptions(
        speed=60,
        seed=5,
        mqtt_port=get_free_port(),
        history_path=str(tmp_path / "history.sqlite3"),
        scoring_period_s=0,
        kpi_period_s=3600,  # no live KPI snapshots: live history is what the line published
        qos_telemetry=1,  # nothing may be lost on the way, so that counts can be exact
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def samples(path: Path) -> list[Sample]:
    store = SqliteStore(path, retention_ms=None)
    try:
        return [
            sample_of(
                s.tags.get("origin", ""), s.measurement, s.field, dict(s.tags), s.time_ms, s.value
            )
            for s in store.read_after(0, 100_000_000)
        ]
    finally:
        store.close()


@pytest.fixture
def stopped_stacks() -> Iterator[list[Stack]]:
    """Stacks a test started; stopped whatever happens."""
    stacks: list[Stack] = []
    yield stacks
    for stack in stacks:
        if stack.started:
            stack.stop()


# -- /healthz while the backfill runs ------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_healthz_says_backfilling_with_progress_while_the_line_is_live(tmp_path: Path) -> None:
    days = 60.0  # far more than the test waits for: it stops the stack mid-way
    stack = Stack(
        load_config(),
        options(tmp_path, backfill_s=days * DAY_S, history_retention_s=days * DAY_S),
    )
    fired: list[BackfillStatus] = []
    stack.on_history_ready(fired.append)
    app = create_app(stack=stack)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:

        def health() -> dict[str, object]:
            body: dict[str, object] = client.get("/healthz", timeout=10).json()
            return body

        def progressing() -> bool:
            backfill = health()["backfill"]
            assert isinstance(backfill, dict)
            return bool(backfill["state"] == "backfilling" and backfill["fraction"] > 0)

        assert wait_until(progressing, timeout=120), health()
        body = health()
        backfill = body["backfill"]
        assert isinstance(backfill, dict)
        assert body["status"] == "backfilling"
        assert backfill["simulated_days_total"] == pytest.approx(days, abs=1e-3)
        assert 0 < backfill["simulated_days_done"] < days
        assert backfill["fraction"] == pytest.approx(backfill["simulated_days_done"] / days)
        # The live line is there at once: online, and its counters move.
        assert wait_until(lambda: client.get("/twin").json()["status"] == "online", timeout=30)
        produced = client.get("/kpis").json()["produced"]
        assert wait_until(lambda: client.get("/kpis").json()["produced"] > produced, 30)
        # The dashboard shows the live line and says the history is on its way.
        from playwright.sync_api import expect

        with chromium() as browser:
            page, problems = watched_page(browser)
            page.goto(f"{url}/")
            expect(page.get_by_test_id("line-status")).to_have_text("line: online", timeout=60_000)
            expect(page.get_by_test_id("history-status")).to_contain_text(
                "history: backfilling", timeout=60_000
            )
            page.close()
        assert problems == [], problems
        assert health()["backfill"]["state"] == "backfilling"  # type: ignore[index]
        assert not stack.history_ready.is_set()
    # Stopped mid-way: the backfill's processes are gone, and history is not "ready".
    assert not stack.started
    assert multiprocessing.active_children() == []
    status = stack.backfill_status()
    assert status is not None
    assert status.state == "stopped"
    assert fired == []
    assert not stack.history_ready.is_set()


# -- the store: exactly backfill plus live, apart -----------------------------------------
def simulated_alone(config: LineConfig, start_ms: int, span_s: float, seed: int) -> Counter[Sample]:
    """The same span simulated in this process, through the same components."""

    class Collect:
        def __init__(self) -> None:
            self.points: list[Point] = []

        def write(self, points: list[Point]) -> None:
            self.points.extend(points)

    sink = Collect()
    line = config.line
    simulate_history(
        config,
        sink,  # type: ignore[arg-type]
        LineTopics(line.site, line.area, line.id),
        start_ms=start_ms,
        span_s=span_s,
        seed=seed,
    )
    return Counter(
        sample_of("backfill", point.measurement, name, dict(point.tags), point.time_ms, value)
        for point in sink.points
        for name, value in point.fields.items()
    )


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(
    ("line", "seed", "broker"), [("default", 5, "embedded"), ("smt", 11, "mosquitto")]
)
def test_live_data_during_the_backfill_is_kept_and_apart_from_it(
    tmp_path: Path,
    stopped_stacks: list[Stack],
    request: pytest.FixtureRequest,
    line: str,
    seed: int,
    broker: str,
) -> None:
    config = load_config(LINES[line])
    span_s = 0.25 * DAY_S
    stack_options = options(tmp_path, seed=seed, backfill_s=span_s)
    if broker == "mosquitto":
        stack_options.mqtt_url = request.getfixturevalue("mosquitto").url
    stack = Stack(config, stack_options)
    stopped_stacks.append(stack)
    ready: list[tuple[BackfillStatus, int]] = []
    stack.on_history_ready(lambda status: ready.append((status, int(time.time() * 1000))))
    stack.start()
    assert stack.history_ready.wait(180), stack.backfill_status()
    assert len(ready) == 1
    status, ready_ms = ready[0]
    assert status.state == "done", status.error
    (result,) = status.results
    publisher = stack.publisher
    assert publisher is not None
    # Some more live data after the backfill, then the line stops and all of it lands.
    telemetry_then = publisher.published["telemetry"]
    assert wait_until(lambda: publisher.published["telemetry"] > telemetry_then + 50, 60)
    stack.stop_plant(flush_timeout=10)
    published = sum(publisher.published.values())
    assert stack.ingest is not None
    ingest = stack.ingest
    assert wait_until(lambda: ingest.health()["accepted"] == published, timeout=30)
    counts = Counter(publisher.published)
    stack.stop()  # flushes the store and closes it
    assert len(ready) == 1  # the hook fired once

    stored = samples(tmp_path / "history.sqlite3")
    backfilled = Counter(s for s in stored if s[0] == "backfill")
    live = [s for s in stored if s[0] == "live"]
    assert len(backfilled) + len(live) == len(stored) > 0  # nothing else, no duplicates

    # The backfill: exactly what the same span gives when simulated here.
    assert result.end_ms - result.start_ms == int(span_s * 1000)
    alone = simulated_alone(config, result.start_ms, span_s, seed + 1)
    assert backfilled == alone
    # Apart in time: the backfill ends at the live start, the live line after it...
    assert max(s[4] for s in backfilled) <= result.end_ms < min(s[4] for s in live)
    # ...and the live line ran while the backfill was writing.
    assert min(s[4] for s in live) < ready_ms
    # Live: every message the plant published, once.
    points = Counter((s[1], s[3], s[4]) for s in live)  # one point per series and time
    by_measurement = Counter(measurement for measurement, _, _ in points)
    parts = sum(n for kind, n in counts.items() if kind.startswith("part_finished")) + counts.get(
        "part_shipped", 0
    )
    assert by_measurement["telemetry"] == counts["telemetry"]
    assert by_measurement["part"] == parts
    assert by_measurement["state"] == counts["state_changed"]


# -- restarts ---------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_a_restart_fills_what_a_stopped_backfill_left_and_nothing_else(
    tmp_path: Path, stopped_stacks: list[Stack]
) -> None:
    config = load_config()
    span_s = 3 * DAY_S
    first = Stack(config, options(tmp_path, backfill_s=span_s))
    stopped_stacks.append(first)
    first.start()

    def share_done() -> float:
        status = first.backfill_status()
        return status.fraction if status is not None else 0.0

    assert wait_until(lambda: share_done() >= 0.3, timeout=180)
    first.stop()
    stopped = first.backfill_status()
    assert stopped is not None
    assert stopped.state == "stopped"
    before = samples(tmp_path / "history.sqlite3")
    newest_backfill = max(s[4] for s in before if s[0] == "backfill")
    first_live = min(s[4] for s in before if s[0] == "live")
    live_end = max(s[4] for s in before if s[0] == "live")

    second = Stack(config, options(tmp_path, backfill_s=span_s))
    stopped_stacks.append(second)
    second.start()
    assert second.history_ready.wait(180)
    resumed = second.backfill_status()
    assert resumed is not None
    assert resumed.state == "done", resumed.error
    # First the rest of the stopped backfill, then (were the restart slow) the tail.
    result, *tail = resumed.results
    assert result.start_ms == newest_backfill + 1
    assert result.end_ms <= first_live
    assert all(live_end < gap.start_ms for gap in tail)
    second.stop()

    after = samples(tmp_path / "history.sqlite3")
    known = set(before)
    added = [s for s in after if s not in known]
    assert added
    assert all(s[0] in ("backfill", "live") for s in added)
    refilled = [s[4] for s in added if s[0] == "backfill" and s[4] <= live_end]
    assert newest_backfill < min(refilled)
    assert max(refilled) <= result.end_ms < first_live
    # Nothing written twice, and the first run's live data untouched.
    assert len(set(after)) == len(after)
    assert [s for s in before if s[0] == "live"] == [
        s for s in after if s[0] == "live" and s[4] <= live_end
    ]
    # The store's note of the first backfill was replaced, and the refill struck off.
    store = SqliteStore(tmp_path / "history.sqlite3", retention_ms=None)
    try:
        assert store.unfinished_backfills() == []
    finally:
        store.close()

    # A third start straight after: history is up to date, nothing to fill, ready at once.
    third = Stack(config, options(tmp_path, backfill_s=span_s))
    stopped_stacks.append(third)
    seen = threading.Event()
    third.on_history_ready(lambda status: seen.set())
    third.start()
    assert seen.is_set()  # during start: nothing to wait for
    status = third.backfill_status()
    assert status is not None
    assert (status.state, status.simulated_s_total) == ("done", 0.0)


# -- planning, on a store written by hand ------------------------------------------------------
def test_plan_fills_the_tail_and_the_rest_of_an_unfinished_backfill(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "plan.sqlite3", retention_ms=None)
    writer = HistoryWriter(store)
    try:
        hour = 3_600_000
        now = 1_800_000_000_000
        tags = {"site": "s", "area": "a", "line": "l", "station": "x"}

        def write(origin: str, times: range) -> None:
            writer.write(
                [
                    Point("telemetry", {**tags, "origin": origin}, {"power_kw": 1.0}, t)
                    for t in times
                ]
            )

        # A backfill of [now-30h, now-20h] stopped at now-25h; live from now-20h to now-10h.
        store.begin_backfill(now - 30 * hour, now - 20 * hour)
        write("backfill", range(now - 30 * hour, now - 25 * hour, 60_000))
        write("live", range(now - 20 * hour, now - 10 * hour + 1, 60_000))
        assert writer.flush(10)
        newest_backfill = now - 25 * hour - 60_000
        noted = (now - 30 * hour, now - 20 * hour)
        plan = plan_backfill(store, live_start_ms=now, span_s=48 * 3600)
        assert [(g.start_ms, g.end_ms, g.noted) for g in plan.gaps] == [
            (newest_backfill + 1, now - 20 * hour, noted),
            (now - 10 * hour + 1, now, None),
        ]
        assert plan.stale_notes == ()
        # A span reaching back less far clips both.
        plan = plan_backfill(store, live_start_ms=now, span_s=22 * 3600)
        assert [(g.start_ms, g.end_ms) for g in plan.gaps] == [
            (now - 22 * hour, now - 20 * hour),
            (now - 10 * hour + 1, now),
        ]
        # Gaps shorter than a minute are not filled; a note with nothing left is stale.
        plan = plan_backfill(store, live_start_ms=now - 10 * hour + 30_000, span_s=3600)
        assert (plan.gaps, plan.stale_notes) == ((), (noted,))
        # Off: nothing planned. Planning only reads: the note is still there.
        assert plan_backfill(store, live_start_ms=now, span_s=0) == BackfillPlan()
        assert store.unfinished_backfills() == [noted]
    finally:
        writer.close()
