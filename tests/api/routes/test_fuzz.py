"""Fuzzing: schemathesis generates requests from the app's own OpenAPI schema and
checks every answer against it: no server error, a documented status code and
content type, and a body that matches the response model.

The app serves a twin fed with a few simulated hours (so stations exist and the
views are full), an ingest, a real SQLite history with a few points, and a
token, which every request carries (the command routes are fuzzed past the
token check). Examples are bounded and derandomized: the same run in CI as here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from feeding import feed_twin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.checks import CheckContext

from api.app import create_app
from twin.config.line import load_config
from twin.history.points import SCHEMA, HistoryWriter, Point
from twin.history.store import SqliteStore
from twin.state.line import TwinState

pytestmark = pytest.mark.slow

TOKEN = "fuzz-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES_PER_OPERATION = 50
FIRST_SAMPLE_MS = 1_700_000_000_000


def _empty_app() -> FastAPI:
    config = load_config()
    twin = TwinState(config.line.site, config.line.area, config.line.id)
    return create_app(twin_state=twin, api_token=TOKEN)


# The schema is read when the module is collected (schemathesis' lazy
# ``from_fixture`` loader does not work with pytest 9); the fixture below then
# fills the app's twin, ingest and history before the first request.
app = _empty_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(
    # An endless Server-Sent Events response: a plain call never returns.
    # test_stream.py covers its answers, its 422s included.
    path=["/stream", "/lines/{line_id}/stream"]
)


@pytest.fixture(scope="module", autouse=True)
def fed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    twin: TwinState = app.state.twin
    fed = feed_twin(2, seed=3, twin=twin)
    ingest, publisher = fed.ingest, fed.publisher
    path: Path = tmp_path_factory.mktemp("fuzz") / "history.sqlite3"
    store = SqliteStore(path, retention_ms=None, retention_every_s=None)
    writer = HistoryWriter(store)
    tags = {"site": twin.site, "area": twin.area, "line": twin.line, "origin": "live"}
    # Ten minutes of every field of every measurement, at two stations.
    writer.write(
        [
            Point(
                measurement,
                {**tags, "station": station},
                {field: float(minute) for field in fields},
                FIRST_SAMPLE_MS + minute * 60_000,
            )
            for measurement, fields in SCHEMA.items()
            for station in ("welding", "cutting")
            for minute in range(10)
        ]
    )
    writer.flush(10)
    app.state.ingest = ingest
    app.state.publisher = publisher
    app.state.history = store
    app.state.writer = writer
    yield app
    store.close()


def no_undocumented_server_error(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Instead of ``not_a_server_error``: a 503 the operation documents is an
    answer by design (``/healthz`` while the ingest is off the broker, a command
    with no line connected); any other 5xx is a bug."""
    status = response.status_code
    documented = str(status) in case.operation.definition.raw.get("responses", {})
    if status >= 500 and not (status == 503 and documented):
        raise AssertionError(f"server error {status}: {response.text[:500]}")
    return None


def invalid_data_rejected(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Instead of ``negative_data_rejection``: a body over the request size limit is
    refused with 413 before it is parsed (``api.limits``), which is a rejection too;
    schemathesis does not list 413 among them."""
    if response.status_code == 413:
        return None
    return checks.negative_data_rejection(ctx, response, case)


# /history has 422s that OpenAPI cannot state: which fields a measurement has,
# start before end, at most MAX_WINDOWS windows. A schema-valid request may break
# them, so "valid data is accepted" does not apply there; every other check does.
# POST /scenarios likewise: a changed release policy is checked across its fields
# (a WIP cap only for conwip and open lines), and setpoints against the line.
# /alarms/history takes its times as /history does (Unix ms or ISO 8601 in a
# string), and from after to is a 422 too.
# The same holds for every line's own paths (the per-line router serves both).
POSITIVE_DATA_NOT_CHECKED = {
    "GET /history",
    "POST /scenarios",
    "GET /alarms/history",
    "GET /lines/{line_id}/history",
    "POST /lines/{line_id}/scenarios",
    "GET /lines/{line_id}/alarms/history",
}
# The stateful runs infer a link from GET /version's version (a text) into a model's
# version number (an integer): the 422 it earns is the right answer, not a rejected
# valid request.
LINKED_DATA_NOT_CHECKED = {"GET /models/{name}/versions/{version}"}
checks.load_all_checks()
ALL_CHECKS: list[Any] = list(checks.CHECKS.get_all())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    # Generating from a schema is slow on a loaded CI machine; that is not a failure.
    suppress_health_check=[HealthCheck.too_slow],
)
def test_the_api_conforms_to_its_schema(case: schemathesis.Case[Any]) -> None:
    excluded: list[Any] = [checks.not_a_server_error, checks.negative_data_rejection]
    if case.operation.label in POSITIVE_DATA_NOT_CHECKED:
        excluded.append(checks.positive_data_acceptance)
    case.call_and_validate(
        headers=AUTH,
        # Every check schemathesis has (its --checks all), not only its defaults.
        checks=ALL_CHECKS,
        excluded_checks=excluded,
        additional_checks=[no_undocumented_server_error, invalid_data_rejected],
    )


@st.composite
def history_queries(draw: st.DrawFn) -> dict[str, str]:
    """Queries /history answers with data: a measurement's own field, start before
    end around the stored samples, maybe a window, an aggregate and tags."""
    measurement = draw(st.sampled_from(list(SCHEMA)))
    start = draw(st.integers(FIRST_SAMPLE_MS - 600_000, FIRST_SAMPLE_MS + 540_000))
    query = {
        "measurement": measurement,
        "field": draw(st.sampled_from(SCHEMA[measurement])),
        "start": str(start),
        "end": str(start + draw(st.integers(60_000, 3_600_000))),
    }
    if draw(st.booleans()):
        query["every"] = draw(st.sampled_from(["500ms", "30s", "1m", "5m", "1h", "60000"]))
        query["agg"] = draw(st.sampled_from(["mean", "min", "max", "last"]))
    if draw(st.booleans()):
        query["station"] = draw(st.sampled_from(["welding", "cutting", "nowhere"]))
    if draw(st.booleans()):
        query["origin"] = draw(st.sampled_from(["live", "backfill"]))
    return query


@given(query=history_queries())
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None)
def test_history_answers_in_range_conform_to_the_schema(query: dict[str, str]) -> None:
    # The generic fuzzing above rarely gets past /history's checks (a random field
    # is unknown): these queries reach the store and downsampling.
    case = schema["/history"]["GET"].Case(query=query)
    response = case.call_and_validate(
        headers=AUTH,
        excluded_checks=[checks.not_a_server_error],
        additional_checks=[no_undocumented_server_error],
    )
    assert response.status_code == 200, response.text


# Stateful: sequences of calls along the links schemathesis infers from the
# schema (a job id from POST /training into GET /jobs/{job_id}, a station id from
# /twin into /stations/{station_id} ...), every answer checked as above.
class _Workflow(schema.as_state_machine()):  # type: ignore[misc]
    def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
        return {"headers": AUTH}

    def validate_response(self, response: Any, case: schemathesis.Case[Any], **kwargs: Any) -> None:
        excluded: list[Any] = [checks.not_a_server_error, checks.negative_data_rejection]
        if case.operation.label in POSITIVE_DATA_NOT_CHECKED | LINKED_DATA_NOT_CHECKED:
            excluded.append(checks.positive_data_acceptance)
        case.validate_response(
            response,
            checks=ALL_CHECKS,
            excluded_checks=excluded,
            additional_checks=[no_undocumented_server_error, invalid_data_rejected],
            headers=AUTH,
        )


TestStatefulWorkflows = _Workflow.TestCase
TestStatefulWorkflows.settings = settings(
    max_examples=25,
    stateful_step_count=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
