"""The line's Asset Administration Shell built from a twin fed through the ingest
(``twin.aas``): its ids, idShorts and values against the line file, the twin and
the learner, read back with the BaSyx SDK's own strict deserialiser."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from basyx.aas import model
from basyx.aas.adapter.json import read_aas_json_file
from feeding import feed_learner

from twin.aas.build import LineEnvironment, build_environment
from twin.aas.concepts import (
    LEARNED_PARAMETERS_SEMANTIC_ID,
    NAMEPLATE_SEMANTIC_ID,
    OPERATIONAL_DATA_SEMANTIC_ID,
    TECHNICAL_DATA_SEMANTIC_ID,
)
from twin.aas.ids import IdShorts, id_short
from twin.aas.serialise import to_json
from twin.config.line import LineConfig, load_config, with_changes
from twin.learning.line import learn_line, learn_unfiled_line
from twin.learning.observer import LineLearner
from twin.state.line import TwinState

REPO = Path(__file__).resolve().parents[2]
CNC_CELL = REPO / "examples" / "lines" / "cnc_cell.yaml"
ID_SHORT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _templates() -> list[LineConfig]:
    return [load_config(), load_config(CNC_CELL)]


def _fed(config: LineConfig, hours: float = 4.0) -> tuple[TwinState, LineLearner]:
    return feed_learner(config, hours, seed=5)


def _read(environment: LineEnvironment) -> model.DictIdentifiableStore[model.Identifiable]:
    """The environment as the SDK reads its JSON back, failing on any defect."""
    text = to_json(environment).decode()
    return read_aas_json_file(io.StringIO(text), failsafe=False)


def _shell(store: Any, shell_id: str) -> model.AssetAdministrationShell:
    shell = store.get_item(shell_id)
    assert isinstance(shell, model.AssetAdministrationShell)
    return shell


def _submodel(store: Any, shell_id: str, semantic: str) -> model.Submodel | None:
    """The submodel of the shell whose semantic id is ``semantic`` (None: none)."""
    found = []
    for reference in _shell(store, shell_id).submodel:
        submodel = reference.resolve(store)
        assert submodel.semantic_id is not None
        if submodel.semantic_id.key[0].value == semantic:
            found.append(submodel)
    assert len(found) <= 1
    return found[0] if found else None


def _technical(store: Any, shell_id: str) -> Any:
    submodel = _submodel(store, shell_id, TECHNICAL_DATA_SEMANTIC_ID)
    assert submodel is not None
    return submodel.get_referable("TechnicalProperties")


def _walk_id_shorts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "idShort" in node:
            yield node["idShort"]
        for value in node.values():
            yield from _walk_id_shorts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_id_shorts(value)


@pytest.mark.parametrize("config", _templates(), ids=lambda c: c.line.id)
def test_the_technical_data_is_the_line_files(config: LineConfig) -> None:
    twin, _ = _fed(config, 1.0)
    environment = build_environment(twin.view(), config)
    store = _read(environment)
    assert len(environment.station_shell_ids) == len(config.stations)
    line = _technical(store, environment.line_shell_id)
    assert line.get_referable("StationCount").value == len(config.stations)
    assert line.get_referable("ReleasePolicy").value == config.release.policy
    for index, (station, shell_id) in enumerate(
        zip(config.stations, environment.station_shell_ids, strict=True)
    ):
        technical = _technical(store, shell_id)
        assert technical.get_referable("Machines").value == station.machines
        rated = technical.get_referable("RatedCycleTime")
        assert rated.value == pytest.approx(station.planned_runtime_per_unit_s())
        assert rated.value_type is float  # xs:double
        capacity = config.buffer_capacity(index)
        if capacity == float("inf"):
            with pytest.raises(KeyError):
                technical.get_referable("InputBufferCapacity")
        else:
            assert technical.get_referable("InputBufferCapacity").value == capacity
        setpoints = technical.get_referable("Setpoints")
        for name in ("speed", "temperature_c"):
            filed = getattr(station.process, name)
            if filed is None:
                with pytest.raises(KeyError):
                    setpoints.get_referable(name)
                continue
            span = setpoints.get_referable(name).get_referable("Range")
            assert (span.min, span.max) == (filed.min, filed.max)
            default = setpoints.get_referable(name).get_referable("Default")
            assert default.value == filed.default


@pytest.mark.parametrize("config", _templates(), ids=lambda c: c.line.id)
def test_the_operational_data_is_the_twins(config: LineConfig) -> None:
    twin, _ = _fed(config, 2.0)
    view = twin.view()
    environment = build_environment(view, config)
    store = _read(environment)
    line = _submodel(store, environment.line_shell_id, OPERATIONAL_DATA_SEMANTIC_ID)
    assert line is not None
    assert view.kpis.oee is not None
    assert view.kpis.oee > 0
    assert line.get_referable("OEE").value == pytest.approx(view.kpis.oee)
    assert line.get_referable("Good").value == view.kpis.good
    assert line.get_referable("Good").value_type.__name__ == "Int"  # xs:int
    assert line.get_referable("Throughput").value == pytest.approx(view.kpis.throughput_per_h)
    for station, shell_id in zip(view.stations, environment.station_shell_ids, strict=True):
        data = _submodel(store, shell_id, OPERATIONAL_DATA_SEMANTIC_ID)
        assert data is not None
        assert data.get_referable("State").value == station.state
        assert data.get_referable("Good").value == station.good
        if station.kpis.availability is not None:
            assert data.get_referable("Availability").value == pytest.approx(
                station.kpis.availability
            )


def test_ids_are_stable_unique_and_built_from_the_isa95_path() -> None:
    config = load_config(CNC_CELL)
    first = build_environment(_fed(config, 0.5)[0].view(), config)
    again = build_environment(_fed(config, 1.5)[0].view(), config)  # another run, same line
    ids = sorted(str(item.id) for item in first.store)
    assert ids == sorted(str(item.id) for item in again.store)
    assert len(ids) == len(set(ids))
    assert first.line_shell_id == "urn:factory-twin:aas:plant-a:machining:cnc-cell"
    assert first.station_shell_ids[0] == "urn:factory-twin:aas:plant-a:machining:cnc-cell:saw"
    other = build_environment(_fed(load_config(), 0.5)[0].view(), load_config())
    assert not set(ids) & {
        str(item.id) for item in other.store if not isinstance(item, model.ConceptDescription)
    }


def test_id_shorts_are_valid_for_ids_that_are_not() -> None:
    """A station id with '-' or a leading digit, and a line id with '-', give valid and
    distinct idShorts."""
    config = with_changes(
        load_config(CNC_CELL), {"stations.0.id": "3d-saw", "stations.2.id": "deburr-1"}
    )
    environment = build_environment(_fed(config, 0.5)[0].view(), config)
    body = json.loads(to_json(environment))
    names = list(_walk_id_shorts(body))
    assert names
    bad = [name for name in names if not ID_SHORT.match(name)]
    assert not bad
    shells = {shell["id"]: shell["idShort"] for shell in body["assetAdministrationShells"]}
    assert shells[environment.line_shell_id] == "cnc_cell"
    assert shells[environment.station_shell_ids[0]] == "X3d_saw"
    assert shells[environment.station_shell_ids[2]] == "deburr_1"
    _read(environment)  # and the SDK reads it back


def test_id_shorts_that_collide_are_told_apart() -> None:
    names = IdShorts()
    assert [names.take("press-1"), names.take("press_1"), names.take("Press_1")] == [
        "press_1",
        "press_1_2",
        "Press_1_3",
    ]
    assert id_short("(line)") == "X_line_"


def test_the_learned_parameters_are_absent_until_something_is_learnt() -> None:
    config = load_config()
    twin, learner = _fed(config, 0.02)  # a minute: too little to learn anything
    nothing = learn_line(config, learner)
    assert nothing.parameters == []
    environment = build_environment(twin.view(), config, nothing)
    store = _read(environment)
    assert _submodel(store, environment.line_shell_id, LEARNED_PARAMETERS_SEMANTIC_ID) is None

    twin, learner = _fed(config, 4.0)
    learnt = learn_line(config, learner)
    assert learnt.parameters
    environment = build_environment(twin.view(), config, learnt)
    store = _read(environment)
    submodel = _submodel(store, environment.line_shell_id, LEARNED_PARAMETERS_SEMANTIC_ID)
    assert submodel is not None
    shown = {
        (group.get_referable("Station").value, element.get_referable("Path").value): element
        for group in submodel.submodel_element
        for element in group.value
        if isinstance(element, model.SubmodelElementCollection)
    }
    assert set(shown) == {(p.station, p.parameter) for p in learnt.parameters}
    for item in learnt.parameters:
        element = shown[(item.station, item.parameter)]
        assert element.get_referable("Value").value == pytest.approx(item.value)
        assert element.get_referable("SampleSize").value == item.n
        assert element.get_referable("Unit").value == item.unit
        assert element.get_referable("Drifted").value is item.drifted
    # Only the line's shell has them.
    for shell_id in environment.station_shell_ids:
        assert _submodel(store, shell_id, LEARNED_PARAMETERS_SEMANTIC_ID) is None


def test_a_line_without_a_file_is_described_by_its_birth_message() -> None:
    config = load_config()
    twin, learner = _fed(config, 4.0)
    view = twin.view()
    environment = build_environment(view, None, learn_unfiled_line(view, learner))
    store = _read(environment)
    assert len(environment.station_shell_ids) == len(config.stations)
    for index, (station, shell_id) in enumerate(
        zip(config.stations, environment.station_shell_ids, strict=True)
    ):
        technical = _technical(store, shell_id)
        assert technical.get_referable("Machines").value == station.machines
        if index > 0:
            capacity = technical.get_referable("InputBufferCapacity").value
            assert capacity == config.buffer_capacity(index)
        with pytest.raises(KeyError):
            technical.get_referable("Setpoints")  # the stream does not carry them
    nameplate = _submodel(store, environment.line_shell_id, NAMEPLATE_SEMANTIC_ID)
    assert nameplate is not None
    designation = nameplate.get_referable("ManufacturerProductDesignation")
    assert designation.value["en"] == config.line.name


def test_every_semantic_id_of_ours_has_its_concept_description() -> None:
    config = load_config()
    twin, learner = _fed(config, 4.0)
    environment = build_environment(twin.view(), config, learn_line(config, learner))
    body = json.loads(to_json(environment))
    described = {item["id"]: item for item in body["conceptDescriptions"]}
    text = json.dumps(body["submodels"])
    ours = set(re.findall(r'"(urn:factory-twin:concept:[^"]+)"', text))
    assert ours
    assert ours == set(described)
    oee = described["urn:factory-twin:concept:1:0:OperationalData/OEE"]
    content = oee["embeddedDataSpecifications"][0]["dataSpecificationContent"]
    assert content["unit"] == "1"
    assert content["dataType"] == "REAL_MEASURE"
