"""The line as an Asset Administration Shell (AAS v3, docs/aas.md).

``GET /aas`` answers an AAS environment as JSON: one shell for the line and one
per station, with their Nameplate, Technical Data and Operational Data submodels,
the Learned Parameters once the twin has learnt any, and the concept descriptions
their properties point at. ``GET /aas.aasx`` answers the same as an AASX package
to download. The BaSyx SDK builds and writes them (``twin.aas``), so the body is
passed through as the SDK wrote it, not through a pydantic model; the SDK is
imported on the first request, not when the API starts (its start-up is measured).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from api.deps import LineDep, LineStack
from api.learnt import recent_learnt

if TYPE_CHECKING:
    from twin.aas.build import LineEnvironment

router = APIRouter(tags=["aas"])

JSON_MEDIA_TYPE = "application/json"
AASX_MEDIA_TYPE = "application/asset-administration-shell-package+xml"

_IDENTIFIABLES: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["id", "modelType"],
        "properties": {"id": {"type": "string"}, "modelType": {"type": "string"}},
    },
}
AAS_JSON: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An AAS v3 environment (the AAS JSON schema, serialised by the "
        "BaSyx SDK): the line's and each station's shell, their submodels and the "
        "concept descriptions they point at.",
        "content": {
            JSON_MEDIA_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["assetAdministrationShells", "submodels"],
                    "properties": {
                        "assetAdministrationShells": _IDENTIFIABLES,
                        "submodels": _IDENTIFIABLES,
                        "conceptDescriptions": _IDENTIFIABLES,
                    },
                }
            }
        },
    }
}
AASX: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The same environment as an AASX package (AAS JSON inside).",
        "content": {AASX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        "headers": {
            "Content-Disposition": {
                "description": 'attachment; filename="{line_id}.aasx"',
                "schema": {"type": "string"},
            }
        },
    }
}


def _environment(line: LineStack) -> LineEnvironment:
    from twin.aas.build import build_environment

    # One view for every figure: the KPIs and states agree with each other.
    view = line.twin.view()
    learnt = None
    if line.learner is not None:
        try:
            learnt = recent_learnt(line.config, line.learner, view)
        except ValueError:  # no file, and no station known yet: nothing learnt
            learnt = None
    return build_environment(view, line.config, learnt)


def _json(line: LineStack) -> bytes:
    from twin.aas.serialise import to_json

    return to_json(_environment(line))


def _aasx(line: LineStack) -> bytes:
    from twin.aas.serialise import to_aasx

    return to_aasx(_environment(line), f"{line.id}: Asset Administration Shells")


@router.get(
    "/aas",
    response_class=Response,
    summary="The line and its stations as Asset Administration Shells (AAS v3 JSON)",
    responses=AAS_JSON,
)
async def read_aas(line: LineDep) -> Response:
    # Learning the line takes up to a second: a worker thread, not the event loop.
    return Response(await run_in_threadpool(_json, line), media_type=JSON_MEDIA_TYPE)


@router.get(
    "/aas.aasx",
    response_class=Response,
    summary="The line's Asset Administration Shells as an AASX package",
    responses=AASX,
)
async def read_aasx(line: LineDep) -> Response:
    body = await run_in_threadpool(_aasx, line)
    filename = re.sub(r"[^A-Za-z0-9_.-]", "_", line.id) or "line"
    return Response(
        body,
        media_type=AASX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}.aasx"'},
    )
