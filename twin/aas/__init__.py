"""The line as an Asset Administration Shell (AAS v3), built with the BaSyx SDK.

``build_environment`` (``twin.aas.build``) turns the twin's view of a line, its line
file and what the twin has learnt into AAS shells and submodels; ``to_json`` and
``to_aasx`` (``twin.aas.serialise``) write them. docs/aas.md describes the
structure. The package reads only the message-built twin, the line file and the
learner, never the simulator: a real line's twin exports the same shells.
"""

from __future__ import annotations
