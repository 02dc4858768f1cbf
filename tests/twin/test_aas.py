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


_PLATE = {
    "manufacturer": "Müller Anlagenbau GmbH",
    "product_uri": "https://example.com/lines/cell-7",
    "order_code": "MA-CELL-7",
    "serial_number": "SN 0042",
    "year_of_construction": 2019,
    "address": {
        "street": "Werkstraße 3",
        "zipcode": "70173",
        "city": "Stuttgart",
        "country": "DE",
    },
}


def _plate_values(submodel: model.Submodel) -> dict[str, tuple[str, Any]]:
    """Each nameplate element: its semantic id and value (a collection's: its own)."""

    def value(element: Any) -> Any:
        if isinstance(element, model.MultiLanguageProperty):
            return dict(element.value)["en"]
        if isinstance(element, model.SubmodelElementCollection):
            return {child.id_short: value(child) for child in element.value}
        return element.value

    return {e.id_short: (e.semantic_id.key[0].value, value(e)) for e in submodel.submodel_element}


def test_the_nameplate_carries_what_the_line_files_nameplate_block_gives() -> None:
    """A nameplate block on the line and on one station of the CNC cell: IDTA
    02006-3-0's five mandatory elements and the optional ones given, in the SDK's
    strict reading, with IDTA's semantic ids; a station without a block keeps its
    designation alone."""
    config = load_config(CNC_CELL)
    station = config.stations[1]
    plated = with_changes(
        config,
        {
            "line.nameplate": _PLATE,
            "stations.1.nameplate": {"manufacturer": "Fräs AG", "serial_number": "F-9"},
        },
    )
    twin, _ = _fed(plated, 1.0)
    environment = build_environment(twin.view(), plated)
    store = _read(environment)
    line_plate = _submodel(store, environment.line_shell_id, NAMEPLATE_SEMANTIC_ID)
    assert line_plate is not None
    values = _plate_values(line_plate)
    assert list(values) == [
        "URIOfTheProduct",
        "ManufacturerName",
        "ManufacturerProductDesignation",
        "AddressInformation",
        "OrderCodeOfManufacturer",
        "SerialNumber",
        "YearOfConstruction",
    ]
    assert values["URIOfTheProduct"] == ("0112/2///61987#ABN590#002", _PLATE["product_uri"])
    assert values["ManufacturerName"] == ("0173-1#02-AAO677#002", _PLATE["manufacturer"])
    assert values["ManufacturerProductDesignation"][1] == plated.line.name
    assert values["AddressInformation"][1] == {
        "Street": "Werkstraße 3",
        "Zipcode": "70173",
        "CityTown": "Stuttgart",
        "NationalCode": "DE",
    }
    assert values["OrderCodeOfManufacturer"] == ("0173-1#02-AAO227#002", "MA-CELL-7")
    assert values["YearOfConstruction"] == ("0173-1#02-AAP906#001", "2019")
    uri = line_plate.get_referable("URIOfTheProduct")
    assert isinstance(uri, model.Property)
    assert uri.value_type is model.datatypes.AnyURI

    by_station = dict(
        zip([s.id for s in plated.stations], environment.station_shell_ids, strict=True)
    )
    plate = _submodel(store, by_station[station.id], NAMEPLATE_SEMANTIC_ID)
    assert plate is not None
    assert {k: v[1] for k, v in _plate_values(plate).items()} == {
        "ManufacturerName": "Fräs AG",
        "ManufacturerProductDesignation": station.name or station.id,
        "SerialNumber": "F-9",
    }
    bare = _submodel(store, by_station[plated.stations[0].id], NAMEPLATE_SEMANTIC_ID)
    assert bare is not None
    assert list(_plate_values(bare)) == ["ManufacturerProductDesignation"]
    # Without a block the line keeps its designation alone, as before.
    unplated = build_environment(twin.view(), config)
    alone = _submodel(_read(unplated), unplated.line_shell_id, NAMEPLATE_SEMANTIC_ID)
    assert alone is not None
    assert list(_plate_values(alone)) == ["ManufacturerProductDesignation"]


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"address": {**_PLATE["address"], "country": "Germany"}}, "address.country", "pattern"),
        ({"product_uri": "not a uri"}, "product_uri", "pattern"),
        ({"year_of_construction": 19}, "year_of_construction", "greater than or equal"),
        ({"manufacturer": ""}, "manufacturer", "at least 1 character"),
        ({"made_by": "x"}, "made_by", "unknown field"),
    ],
)
def test_a_bad_nameplate_is_refused_naming_the_field(
    change: dict[str, Any], field: str, problem: str
) -> None:
    from twin.config.line import ConfigError

    with pytest.raises(ConfigError) as error:
        with_changes(load_config(CNC_CELL), {"line.nameplate": {**_PLATE, **change}})
    assert f"line.nameplate.{field}" in str(error.value)
    assert problem in str(error.value)


def test_a_full_nameplate_passes_the_compliance_tool(tmp_path: Path) -> None:
    import subprocess
    import sys

    plated = with_changes(load_config(), {"line.nameplate": _PLATE})
    twin, _ = _fed(plated, 0.5)
    path = tmp_path / "plated.json"
    path.write_bytes(to_json(build_environment(twin.view(), plated)))
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "aas_compliance.py"), "json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validate file against official json schema" in result.stdout
