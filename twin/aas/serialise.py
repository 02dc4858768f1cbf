"""The line's AAS environment as bytes: AAS JSON, and an AASX package.

Both come from the BaSyx SDK's own serialisers, so what the API serves is what
the SDK (and the AASX Package Explorer, the BaSyx AAS server) reads back. The
AASX package holds every shell with its submodels and the concept descriptions
they point at, as one JSON part (``/aasx/data.json``): the SDK writes its XML in
the AAS 3.1 namespace, which readers of AAS 3.0 (the official 3.0 XML schema among
them) reject, while the JSON form is the same in both.
"""

from __future__ import annotations

import datetime
import io

from basyx.aas.adapter import aasx
from basyx.aas.adapter.json import json_serialization
from pyecma376_2.core_properties import OPCCoreProperties

from twin.aas.build import LineEnvironment


def to_json(environment: LineEnvironment) -> bytes:
    """The environment as AAS v3 JSON (``assetAdministrationShells``, ``submodels``,
    ``conceptDescriptions``)."""
    text: str = json_serialization.object_store_to_json(environment.store)
    return text.encode("utf-8")


def to_aasx(environment: LineEnvironment, title: str) -> bytes:
    """The environment as an AASX package (ZIP, OPC) titled ``title``."""
    buffer = io.BytesIO()
    properties = OPCCoreProperties()  # type: ignore[no-untyped-call]
    properties.created = datetime.datetime.now(datetime.UTC)
    properties.creator = "factory-twin"
    properties.title = title
    # failsafe off: a defect object must fail the download, not vanish from it.
    with aasx.AASXWriter(buffer, failsafe=False) as writer:
        files = aasx.DictSupplementaryFileContainer()  # type: ignore[no-untyped-call]
        # Every object, the concept descriptions too: ``write_aas`` would only take
        # those its semantic ids point at as model references, and ours are global.
        writer.write_all_aas_objects("/aasx/data.json", environment.store, files, write_json=True)
        writer.write_core_properties(properties)
    return buffer.getvalue()
