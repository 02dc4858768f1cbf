"""The line and its stations as an Asset Administration Shell environment (AAS v3).

``build_environment`` makes one shell for the line and one per station, each with
its submodels, and the concept descriptions their properties point at
(``twin.aas.concepts``):

- Nameplate (IDTA 02006-3-0): the product designation (the line's or station's
  name) and what the line file's ``nameplate`` block gives: the manufacturer, the
  product's URI, the order code, the serial number, the year of construction and
  the manufacturer's address. What the file does not give is left out rather than
  made up; the line's site, area and station ids are the assets' specific asset ids.
- Technical Data (IDTA 02003-1-2, its TechnicalProperties collection): the line
  file's nominal values: stations, release, machines, rated cycle times, buffer
  capacities, setpoint ranges. A line served without a file shows what its birth
  message told the twin instead (stations, machines, buffer capacities).
- Operational Data (ours): the twin's KPIs and each station's state, as of the
  twin's watermark, from one ``LineView`` so that they agree with each other.
- Learned Parameters (ours, line shell only): what the twin has learnt from the
  stream (``twin.learning``), each estimate with its interval and the file's value.
  Absent until something is learnt, rather than an empty submodel that looks like
  "nothing drifted".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from basyx.aas import model
from basyx.aas.model import datatypes

from twin.aas.concepts import (
    ADDRESS_INFORMATION,
    CITY_TOWN,
    CONCEPTS,
    LEARNED_PARAMETERS_SEMANTIC_ID,
    MANUFACTURER_NAME,
    MANUFACTURER_PRODUCT_DESIGNATION,
    NAMEPLATE_SEMANTIC_ID,
    NATIONAL_CODE,
    OPERATIONAL_DATA_SEMANTIC_ID,
    ORDER_CODE_OF_MANUFACTURER,
    SERIAL_NUMBER,
    STREET,
    TECHNICAL_DATA_SEMANTIC_ID,
    TECHNICAL_PROPERTIES_SEMANTIC_ID,
    URI_OF_THE_PRODUCT,
    YEAR_OF_CONSTRUCTION,
    ZIPCODE,
    Concept,
    concept_description,
    global_reference,
    semantic_id,
)
from twin.aas.ids import IdShorts, id_short, urn
from twin.config.line import LineConfig, Nameplate, Station
from twin.learning.line import LINE, LearnedLine, LearnedParameter
from twin.state.views import KpiSet, LineView, StationView

Store = model.DictIdentifiableStore[model.Identifiable]
# The value types the shell uses: xs:double, xs:int, xs:string, xs:boolean.
Double = float
Int = datatypes.Int


@dataclass(frozen=True)
class LineEnvironment:
    """The shells, submodels and concept descriptions of one line."""

    store: Store
    line_shell_id: str
    station_shell_ids: list[str]

    @property
    def shell_ids(self) -> list[str]:
        return [self.line_shell_id, *self.station_shell_ids]


def _finite(value: float | None) -> float | None:
    # JSON has no infinity; an unbounded interval end is absent rather than "INF".
    return float(value) if value is not None and math.isfinite(value) else None


def _double(name: str, concept: str, value: float | None) -> model.Property:
    return model.Property(name, Double, _finite(value), semantic_id=semantic_id(concept))


def _int(name: str, concept: str, value: int | None) -> model.Property:
    return model.Property(name, Int, value, semantic_id=semantic_id(concept))


def _text(name: str, concept: str, value: str | None) -> model.Property:
    return model.Property(name, str, value, semantic_id=semantic_id(concept))


def _collection(
    name: str, semantic: model.Reference, elements: Iterable[model.SubmodelElement]
) -> model.SubmodelElementCollection:
    return model.SubmodelElementCollection(name, value=list(elements), semantic_id=semantic)


def _submodel(
    identifier: str, name: str, semantic: str, elements: Iterable[model.SubmodelElement]
) -> model.Submodel:
    return model.Submodel(
        identifier,
        submodel_element=list(elements),
        id_short=name,
        semantic_id=global_reference(semantic),
    )


# -- nameplate ---------------------------------------------------------------------------
def _words(name: str, semantic: str, text: str) -> model.MultiLanguageProperty:
    return model.MultiLanguageProperty(
        name,
        value=model.MultiLanguageTextType({"en": text}),
        semantic_id=global_reference(semantic),
    )


def _plain(name: str, semantic: str, text: str, kind: type[str] = str) -> model.Property:
    return model.Property(name, kind, text, semantic_id=global_reference(semantic))


def _nameplate(identifier: str, designation: str, plate: Nameplate | None) -> model.Submodel:
    """The Digital Nameplate's elements in IDTA's order, each only when known."""
    elements: list[model.SubmodelElement] = []
    if plate is not None and plate.product_uri is not None:
        elements.append(
            _plain("URIOfTheProduct", URI_OF_THE_PRODUCT, plate.product_uri, datatypes.AnyURI)
        )
    if plate is not None:
        elements.append(_words("ManufacturerName", MANUFACTURER_NAME, plate.manufacturer))
    elements.append(
        _words("ManufacturerProductDesignation", MANUFACTURER_PRODUCT_DESIGNATION, designation)
    )
    if plate is not None and plate.address is not None:
        address = plate.address
        lines = [
            _words("Street", STREET, address.street),
            _words("Zipcode", ZIPCODE, address.zipcode),
            _words("CityTown", CITY_TOWN, address.city),
            _words("NationalCode", NATIONAL_CODE, address.country),
        ]
        elements.append(
            _collection("AddressInformation", global_reference(ADDRESS_INFORMATION), lines)
        )
    if plate is not None:
        for name, semantic, value in (
            ("OrderCodeOfManufacturer", ORDER_CODE_OF_MANUFACTURER, plate.order_code),
            ("SerialNumber", SERIAL_NUMBER, plate.serial_number),
            ("YearOfConstruction", YEAR_OF_CONSTRUCTION, plate.year_of_construction),
        ):
            if value is not None:
                elements.append(_plain(name, semantic, str(value)))
    return _submodel(identifier, "Nameplate", NAMEPLATE_SEMANTIC_ID, elements)


# -- technical data ----------------------------------------------------------------------
def _technical_data(identifier: str, properties: list[model.SubmodelElement]) -> model.Submodel:
    technical = _collection(
        "TechnicalProperties", global_reference(TECHNICAL_PROPERTIES_SEMANTIC_ID), properties
    )
    return _submodel(identifier, "TechnicalData", TECHNICAL_DATA_SEMANTIC_ID, [technical])


def _line_technical(config: LineConfig | None, view: LineView) -> list[model.SubmodelElement]:
    count = len(config.stations) if config is not None else len(view.stations)
    elements: list[model.SubmodelElement] = [
        _int("StationCount", "TechnicalData/StationCount", count)
    ]
    if config is not None:
        release = config.release
        elements.append(_text("ReleasePolicy", "TechnicalData/ReleasePolicy", release.policy))
        elements.append(_int("BatchSize", "TechnicalData/BatchSize", release.batch_size))
        if release.wip_cap is not None:
            elements.append(_int("WipCap", "TechnicalData/WipCap", release.wip_cap))
    return elements


def _setpoints(station: Station) -> model.SubmodelElementCollection:
    process = station.process
    elements: list[model.SubmodelElement] = []
    for name, setpoint in (("speed", process.speed), ("temperature_c", process.temperature_c)):
        if setpoint is None:
            continue
        concept = f"TechnicalData/Setpoint/{name}"
        span = model.Range(
            "Range",
            Double,
            min=float(setpoint.min),
            max=float(setpoint.max),
            semantic_id=semantic_id(concept),
        )
        default = _double("Default", f"{concept}/Default", setpoint.default)
        elements.append(_collection(id_short(name), semantic_id(concept), [span, default]))
    return model.SubmodelElementCollection("Setpoints", value=elements)


def _station_technical_from_file(config: LineConfig, index: int) -> list[model.SubmodelElement]:
    station = config.stations[index]
    elements: list[model.SubmodelElement] = [
        _int("Machines", "TechnicalData/Machines", station.machines),
        _double(
            "RatedCycleTime", "TechnicalData/RatedCycleTime", station.planned_runtime_per_unit_s()
        ),
        _double(
            "NominalProcessingTime",
            "TechnicalData/NominalProcessingTime",
            float(station.processing_time.mean),
        ),
    ]
    capacity = config.buffer_capacity(index)
    if math.isfinite(capacity):
        elements.append(
            _int("InputBufferCapacity", "TechnicalData/InputBufferCapacity", int(capacity))
        )
    elements.append(_setpoints(station))
    return elements


def _station_technical_from_twin(station: StationView) -> list[model.SubmodelElement]:
    # What the line's birth message said: no cycle times or setpoints reach the twin.
    machines = len(station.machines) or station.kpis.machines
    elements: list[model.SubmodelElement] = [_int("Machines", "TechnicalData/Machines", machines)]
    buffer = station.input_buffer
    if buffer is not None and buffer.capacity is not None:
        elements.append(
            _int("InputBufferCapacity", "TechnicalData/InputBufferCapacity", buffer.capacity)
        )
    return elements


# -- operational data --------------------------------------------------------------------
def _kpi_elements(kpis: KpiSet | None) -> list[model.SubmodelElement]:
    return [
        _double("OEE", "OperationalData/OEE", kpis.oee if kpis else None),
        _double(
            "Availability", "OperationalData/Availability", kpis.availability if kpis else None
        ),
        _double(
            "Effectiveness", "OperationalData/Effectiveness", kpis.effectiveness if kpis else None
        ),
        _double(
            "QualityRatio", "OperationalData/QualityRatio", kpis.quality_ratio if kpis else None
        ),
    ]


def _line_operational(view: LineView) -> list[model.SubmodelElement]:
    kpis = view.kpis
    return [
        _text("LineStatus", "OperationalData/LineStatus", view.status),
        _double("AsOfLineTime", "OperationalData/AsOfLineTime", kpis.as_of_s),
        _double("ObservedTime", "OperationalData/ObservedTime", kpis.observed_s),
        *_kpi_elements(kpis),
        _double("Throughput", "OperationalData/Throughput", kpis.throughput_per_h),
        _int("Produced", "OperationalData/Produced", kpis.produced),
        _int("Good", "OperationalData/Good", kpis.good),
        _int("Scrap", "OperationalData/Scrap", kpis.scrap),
        _int("Rework", "OperationalData/Rework", kpis.rework),
        _int("WorkInProcess", "OperationalData/WorkInProcess", kpis.work_in_process),
        _text("Bottleneck", "OperationalData/Bottleneck", kpis.bottleneck),
    ]


def _station_operational(station: StationView | None) -> list[model.SubmodelElement]:
    # A station the twin has not heard from yet: its properties, without values.
    kpis = station.kpis if station is not None else None
    buffer = station.input_buffer if station is not None else None
    return [
        _text("State", "OperationalData/StationState", station.state if station else None),
        _text(
            "StateReason",
            "OperationalData/StationStateReason",
            station.state_reason if station else None,
        ),
        *_kpi_elements(kpis),
        _double("Utilisation", "OperationalData/Utilisation", kpis.utilisation if kpis else None),
        _int("Started", "OperationalData/Started", station.started if station else None),
        _int("Good", "OperationalData/Good", station.good if station else None),
        _int("Scrap", "OperationalData/Scrap", station.scrap if station else None),
        _int("Rework", "OperationalData/Rework", station.rework if station else None),
        _int("BufferLevel", "OperationalData/BufferLevel", buffer.level if buffer else None),
    ]


# -- learned parameters ------------------------------------------------------------------
def _learned(item: LearnedParameter, name: str) -> model.SubmodelElementCollection:
    elements: list[model.SubmodelElement] = [
        _text("Path", "LearnedParameters/Path", item.parameter),
        _double("Value", "LearnedParameters/Value", item.value),
        _double("Low", "LearnedParameters/Low", item.low),
        _double("High", "LearnedParameters/High", item.high),
    ]
    if item.nominal is not None:
        elements.append(_double("Nominal", "LearnedParameters/Nominal", item.nominal))
    elements += [
        _int("SampleSize", "LearnedParameters/SampleSize", item.n),
        _text("Unit", "LearnedParameters/Unit", item.unit),
        model.Property(
            "Drifted", bool, item.drifted, semantic_id=semantic_id("LearnedParameters/Drifted")
        ),
    ]
    return _collection(name, semantic_id("LearnedParameters/Parameter"), elements)


def _learned_parameters(identifier: str, learnt: LearnedLine) -> model.Submodel:
    by_station: dict[str, list[LearnedParameter]] = {}
    for item in learnt.parameters:
        by_station.setdefault(item.station, []).append(item)
    stations = IdShorts()
    groups: list[model.SubmodelElement] = []
    for station, items in by_station.items():
        names = IdShorts()
        parameters: list[model.SubmodelElement] = [
            _text("Station", "LearnedParameters/Station", station)
        ]
        parameters += [_learned(item, names.take(item.parameter)) for item in items]
        group = stations.take("Line" if station == LINE else station)
        groups.append(model.SubmodelElementCollection(group, value=parameters))
    return _submodel(identifier, "LearnedParameters", LEARNED_PARAMETERS_SEMANTIC_ID, groups)


# -- shells ------------------------------------------------------------------------------
def _shell(
    path: tuple[str, ...],
    name: str,
    submodels: list[model.Submodel],
    store: Store,
) -> str:
    site, area, line, *station = path
    asset_ids = [
        model.SpecificAssetId("site", site),
        model.SpecificAssetId("area", area),
        model.SpecificAssetId("line", line),
    ]
    if station:
        asset_ids.append(model.SpecificAssetId("station", station[0]))
    shell = model.AssetAdministrationShell(
        model.AssetInformation(
            model.AssetKind.INSTANCE,
            global_asset_id=urn("asset", *path),
            specific_asset_id=asset_ids,
        ),
        id_=urn("aas", *path),
        id_short=id_short(path[-1]),
        description=model.MultiLanguageTextType({"en": name}),
        submodel={model.ModelReference.from_referable(submodel) for submodel in submodels},
    )
    store.add(shell)
    for submodel in submodels:
        store.add(submodel)
    return str(shell.id)


def build_environment(
    view: LineView, config: LineConfig | None = None, learnt: LearnedLine | None = None
) -> LineEnvironment:
    """The line's AAS environment from the twin's ``view``, the line file ``config``
    (None: a line served without one) and what was ``learnt`` (None, or nothing
    learnt yet: no Learned Parameters submodel)."""
    line_path = (view.site, view.area, view.line)
    store: Store = model.DictIdentifiableStore()
    live = {station.id: station for station in view.stations}

    def submodel_id(kind: str, *station: str) -> str:
        return urn("submodel", kind, *line_path, *station)

    line_name = (config.line.name if config is not None else view.name) or view.line
    line_submodels = [
        _nameplate(
            submodel_id("nameplate"),
            line_name,
            config.line.nameplate if config is not None else None,
        ),
        _technical_data(submodel_id("technical-data"), _line_technical(config, view)),
        _submodel(
            submodel_id("operational-data"),
            "OperationalData",
            OPERATIONAL_DATA_SEMANTIC_ID,
            _line_operational(view),
        ),
    ]
    if learnt is not None and learnt.parameters:
        line_submodels.append(_learned_parameters(submodel_id("learned-parameters"), learnt))
    line_shell = _shell(line_path, line_name, line_submodels, store)

    stations: list[tuple[str, str, Nameplate | None]]
    if config is not None:
        stations = [(s.id, s.name or s.id, s.nameplate) for s in config.stations]
    else:
        stations = [(s.id, s.name or s.id, None) for s in view.stations]
    station_shells: list[str] = []
    for index, (station_id, name, plate) in enumerate(stations):
        technical = (
            _station_technical_from_file(config, index)
            if config is not None
            else _station_technical_from_twin(live[station_id])
        )
        submodels = [
            _nameplate(submodel_id("nameplate", station_id), name, plate),
            _technical_data(submodel_id("technical-data", station_id), technical),
            _submodel(
                submodel_id("operational-data", station_id),
                "OperationalData",
                OPERATIONAL_DATA_SEMANTIC_ID,
                _station_operational(live.get(station_id)),
            ),
        ]
        station_shells.append(_shell((*line_path, station_id), name, submodels, store))

    for item in _used_concepts(store):
        store.add(concept_description(item))
    return LineEnvironment(store, line_shell, station_shells)


def _used_concepts(store: Store) -> list[Concept]:
    """Our concepts some element of ``store`` points at, each once, in a stable order."""
    used: set[str] = set()

    def visit(elements: Iterable[model.SubmodelElement]) -> None:
        for element in elements:
            if element.semantic_id is not None:
                used.add(str(element.semantic_id.key[0].value))
            if isinstance(element, model.SubmodelElementCollection):
                visit(element.value)

    for item in store:
        if isinstance(item, model.Submodel):
            if item.semantic_id is not None:
                used.add(str(item.semantic_id.key[0].value))
            visit(item.submodel_element)
    return [c for c in CONCEPTS.values() if c.id in used]
