"""The concepts behind the shell's properties: semantic ids, units and value types.

Every property of the shell points at a concept by its semantic id. Where a
standard defines the concept and we are sure of its id, that id is used: the IDTA
submodel templates (Digital Nameplate 3.0, Technical Data 1.2) and the ECLASS
IRDI of the manufacturer's product designation. Everything else (the ISO 22400-2
KPIs, the station states, the line file's parameters, what the twin learnt) is a
concept of our own, ``urn:factory-twin:concept:1:0:...`` (``twin.aas.ids``): ISO
22400 defines the KPIs but publishes no ids for them, and a wrong IRI is worse
than our own. Our concepts travel with the shell as concept descriptions (IEC
61360 data specification: name, definition, data type and unit), so a reader sees
each property's unit without reading this code.
"""

from __future__ import annotations

from dataclasses import dataclass

from basyx.aas import model
from basyx.aas.model.concept import ConceptDescription

from twin.aas.ids import concept

NAMEPLATE_SEMANTIC_ID = "https://admin-shell.io/idta/nameplate/3/0/Nameplate"
TECHNICAL_DATA_SEMANTIC_ID = "https://admin-shell.io/ZVEI/TechnicalData/Submodel/1/2"
TECHNICAL_PROPERTIES_SEMANTIC_ID = (
    "https://admin-shell.io/ZVEI/TechnicalData/TechnicalProperties/1/1"
)
# ECLASS 0173-1#02-AAW338#001, as IDTA 02006-3-0 uses it.
MANUFACTURER_PRODUCT_DESIGNATION = "0173-1#02-AAW338#001"
# The rest of the nameplate, with the ids IDTA 02006-3-0 gives its elements.
URI_OF_THE_PRODUCT = "0112/2///61987#ABN590#002"
MANUFACTURER_NAME = "0173-1#02-AAO677#002"
ORDER_CODE_OF_MANUFACTURER = "0173-1#02-AAO227#002"
SERIAL_NUMBER = "0173-1#02-AAM556#002"
YEAR_OF_CONSTRUCTION = "0173-1#02-AAP906#001"
ADDRESS_INFORMATION = (
    "https://admin-shell.io/zvei/nameplate/1/0/ContactInformations/AddressInformation"
)
STREET = "0173-1#02-AAO128#002"
ZIPCODE = "0173-1#02-AAO129#002"
CITY_TOWN = "0173-1#02-AAO132#002"
NATIONAL_CODE = "0173-1#02-AAO134#002"
OPERATIONAL_DATA_SEMANTIC_ID = concept("OperationalData")
LEARNED_PARAMETERS_SEMANTIC_ID = concept("LearnedParameters")
IEC61360_TEMPLATE = (
    "https://admin-shell.io/DataSpecificationTemplates/DataSpecificationIEC61360/3/0"
)

# A ratio (OEE and its factors) has the unit one, as ISO 80000-1 writes it.
RATIO = "1"
Kind = model.DataTypeIEC61360


@dataclass(frozen=True)
class Concept:
    """One of our concepts: what its properties mean and in which unit."""

    name: str  # the path after the namespace: OperationalData/OEE
    label: str
    definition: str
    data_type: model.DataTypeIEC61360 | None = None
    unit: str | None = None

    @property
    def id(self) -> str:
        return concept(self.name)


def _c(
    name: str,
    label: str,
    definition: str,
    data_type: model.DataTypeIEC61360 | None = None,
    unit: str | None = None,
) -> Concept:
    return Concept(name, label, definition, data_type, unit)


_OP = "OperationalData"
_TD = "TechnicalData"
_LP = "LearnedParameters"
CONCEPTS: dict[str, Concept] = {
    c.name: c
    for c in (
        _c(
            _OP,
            "Operational data",
            "The line's or station's live figures, as of the twin's watermark.",
        ),
        _c(_LP, "Learned parameters", "What the twin learnt of the line from its stream."),
        # -- operational data: ISO 22400-2 KPIs as the twin computes them (docs/kpis.md)
        _c(
            f"{_OP}/OEE",
            "OEE",
            "Availability x effectiveness x quality ratio (ISO 22400-2).",
            Kind.REAL_MEASURE,
            RATIO,
        ),
        _c(
            f"{_OP}/Availability",
            "Availability",
            "APT / PBT (ISO 22400-2).",
            Kind.REAL_MEASURE,
            RATIO,
        ),
        _c(
            f"{_OP}/Effectiveness",
            "Effectiveness",
            "PRU x PQ / APT (ISO 22400-2).",
            Kind.REAL_MEASURE,
            RATIO,
        ),
        _c(
            f"{_OP}/QualityRatio",
            "Quality ratio",
            "GQ / PQ (ISO 22400-2).",
            Kind.REAL_MEASURE,
            RATIO,
        ),
        _c(
            f"{_OP}/Utilisation",
            "Utilisation",
            "Busy time / planned busy time.",
            Kind.REAL_MEASURE,
            RATIO,
        ),
        _c(
            f"{_OP}/Throughput",
            "Throughput",
            "Good parts per calendar hour of the observed span.",
            Kind.REAL_MEASURE,
            "1/h",
        ),
        _c(
            f"{_OP}/Produced",
            "Produced quantity",
            "PQ: parts finished, good and scrap.",
            Kind.INTEGER_COUNT,
        ),
        _c(f"{_OP}/Good", "Good quantity", "GQ: good parts.", Kind.INTEGER_COUNT),
        _c(f"{_OP}/Scrap", "Scrap quantity", "Parts scrapped.", Kind.INTEGER_COUNT),
        _c(f"{_OP}/Rework", "Rework quantity", "Rework passes.", Kind.INTEGER_COUNT),
        _c(f"{_OP}/Started", "Started quantity", "Parts started here.", Kind.INTEGER_COUNT),
        _c(
            f"{_OP}/WorkInProcess",
            "Work in process",
            "Parts inside the line now.",
            Kind.INTEGER_COUNT,
        ),
        _c(
            f"{_OP}/BufferLevel",
            "Input buffer level",
            "Parts waiting in the input buffer.",
            Kind.INTEGER_COUNT,
        ),
        _c(
            f"{_OP}/ObservedTime",
            "Observed time",
            "The span the figures cover: the line's planned busy time.",
            Kind.REAL_MEASURE,
            "s",
        ),
        _c(
            f"{_OP}/AsOfLineTime",
            "As of line time",
            "The line time every figure is as of: the twin's watermark.",
            Kind.REAL_MEASURE,
            "s",
        ),
        _c(f"{_OP}/LineStatus", "Line status", "online, offline or unknown.", Kind.STRING),
        _c(f"{_OP}/Bottleneck", "Bottleneck", "The station that limits the line.", Kind.STRING),
        _c(
            f"{_OP}/StationState",
            "Station state",
            "running, setup, maintenance, down, starved, blocked, stopped or planned downtime "
            "(docs/mqtt.md).",
            Kind.STRING,
        ),
        _c(
            f"{_OP}/StationStateReason",
            "Station state reason",
            "Why it is in that state.",
            Kind.STRING,
        ),
        # -- technical data: the line file's nominal values (docs/configuration.md)
        _c(
            f"{_TD}/StationCount",
            "Stations",
            "Stations of the line, in flow order.",
            Kind.INTEGER_COUNT,
        ),
        _c(f"{_TD}/ReleasePolicy", "Release policy", "saturated, open or conwip.", Kind.STRING),
        _c(
            f"{_TD}/BatchSize",
            "Batch size",
            "Consecutive parts of the same product.",
            Kind.INTEGER_COUNT,
        ),
        _c(f"{_TD}/WipCap", "WIP cap", "Parts a conwip line circulates (w).", Kind.INTEGER_COUNT),
        _c(f"{_TD}/Machines", "Machines", "Parallel machines of the station.", Kind.INTEGER_COUNT),
        _c(
            f"{_TD}/RatedCycleTime",
            "Rated cycle time",
            "Planned runtime per unit of one machine (ISO 22400-2 PRU).",
            Kind.REAL_MEASURE,
            "s",
        ),
        _c(
            f"{_TD}/NominalProcessingTime",
            "Nominal processing time",
            "Mean processing time per part at speed 1.",
            Kind.REAL_MEASURE,
            "s",
        ),
        _c(
            f"{_TD}/InputBufferCapacity",
            "Input buffer capacity",
            "Parts the input buffer holds; absent: unlimited.",
            Kind.INTEGER_COUNT,
        ),
        _c(
            f"{_TD}/Setpoint/speed",
            "Speed setpoint",
            "Processing speed as a factor of the nominal speed: its range.",
            Kind.REAL_MEASURE,
            RATIO,
        ),
        _c(
            f"{_TD}/Setpoint/speed/Default",
            "Speed setpoint default",
            "The speed the line starts with.",
            Kind.REAL_MEASURE,
            RATIO,
        ),
        _c(
            f"{_TD}/Setpoint/temperature_c",
            "Temperature setpoint",
            "Process temperature: its range.",
            Kind.REAL_MEASURE,
            "°C",
        ),
        _c(
            f"{_TD}/Setpoint/temperature_c/Default",
            "Temperature setpoint default",
            "The temperature the line starts with.",
            Kind.REAL_MEASURE,
            "°C",
        ),
        # -- learned parameters (twin.learning, docs/learning.md); their unit varies, so
        # each carries it in its Unit element rather than in the concept.
        _c(
            f"{_LP}/Parameter",
            "Learned parameter",
            "One parameter of the line file as the twin learnt it from the stream.",
        ),
        _c(
            f"{_LP}/Path",
            "Parameter path",
            "Its path in the station's block of the line file.",
            Kind.STRING,
        ),
        _c(f"{_LP}/Value", "Learned value", "The estimate; in the unit of Unit."),
        _c(f"{_LP}/Low", "Interval low", "The 95% interval's lower end; in the unit of Unit."),
        _c(f"{_LP}/High", "Interval high", "The 95% interval's upper end; in the unit of Unit."),
        _c(f"{_LP}/Nominal", "Nominal value", "The line file's value; in the unit of Unit."),
        _c(
            f"{_LP}/SampleSize",
            "Sample size",
            "The parts, breakdowns or repairs it rests on.",
            Kind.INTEGER_COUNT,
        ),
        _c(
            f"{_LP}/Unit", "Unit", "The unit of the value, interval and nominal value.", Kind.STRING
        ),
        _c(
            f"{_LP}/Drifted",
            "Drifted",
            "The learnt value left the nominal one (docs/learning.md).",
            Kind.BOOLEAN,
        ),
        _c(
            f"{_LP}/Station",
            "Station",
            "The station it belongs to; (line): the line's own.",
            Kind.STRING,
        ),
    )
}


def global_reference(iri: str) -> model.ExternalReference:
    """A semantic id that points outside the shell: a standard's, or our concept's."""
    return model.ExternalReference((model.Key(model.KeyTypes.GLOBAL_REFERENCE, iri),))


def semantic_id(name: str) -> model.ExternalReference:
    """The semantic id of our concept ``name`` (KeyError for an unknown one, so that
    no property points at a concept the shell does not describe)."""
    return global_reference(CONCEPTS[name].id)


def concept_description(item: Concept) -> ConceptDescription:
    """``item`` as a concept description with its IEC 61360 data specification."""
    content = model.DataSpecificationIEC61360(
        preferred_name=model.PreferredNameTypeIEC61360({"en": item.label}),
        data_type=item.data_type,
        definition=model.DefinitionTypeIEC61360({"en": item.definition}),
        unit=item.unit,
    )
    spec = model.EmbeddedDataSpecification(
        data_specification=global_reference(IEC61360_TEMPLATE),
        data_specification_content=content,
    )
    return ConceptDescription(
        id_=item.id,
        id_short=item.name.replace("/", "_"),
        embedded_data_specifications=(spec,),
    )
