"""Identifiers of the line's Asset Administration Shell: stable, global and valid.

Every identifiable (shell, asset, submodel) gets a URN built from the line's
ISA-95 path, ``urn:factory-twin:{kind}:{site}:{area}:{line}[:{station}]...``: the
same line file, or the same line announced over MQTT, gives the same ids after any
restart, and two lines of one site never share one. The parts are the line file's
identifiers (lower-case letters, digits, ``_`` and ``-``), percent-encoded all the
same, because a line without a file is named by its topics alone.

An idShort must start with a letter and hold only letters, digits and ``_`` (the
AAS 3.0 rule; 3.0.1 also allows ``-`` inside, which older tools reject), so
``id_short`` maps anything else to ``_`` and prefixes a letter where needed;
``IdShorts`` keeps them unique within one parent when two ids map to the same.
"""

from __future__ import annotations

import re
from urllib.parse import quote

NAMESPACE = "urn:factory-twin"
# Our own concept dictionary: the semantic ids of what the standards do not define.
CONCEPT_NAMESPACE = f"{NAMESPACE}:concept:1:0"

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_]")
# The AAS NameType is at most 128 characters; a suffix for uniqueness needs room.
MAX_ID_SHORT = 120


def _part(text: str) -> str:
    # ':' separates the levels, so it may not appear inside one.
    return quote(text, safe="-_.~")


def urn(kind: str, *path: str) -> str:
    """``urn:factory-twin:{kind}:{path[0]}:...``, each level percent-encoded."""
    return ":".join([NAMESPACE, kind, *(_part(level) for level in path)])


def concept(name: str) -> str:
    """The semantic id of one of our concepts (``OperationalData/OEE``)."""
    return f"{CONCEPT_NAMESPACE}:{name}"


def id_short(text: str, prefix: str = "X") -> str:
    """``text`` as a valid idShort: other characters become ``_``, and ``prefix``
    goes in front when it does not start with a letter (``3d-printer``:
    ``X3d_printer``)."""
    cleaned = _NOT_ALLOWED.sub("_", text)
    if not cleaned[:1].isascii() or not cleaned[:1].isalpha():
        cleaned = prefix + cleaned
    return cleaned[:MAX_ID_SHORT]


class IdShorts:
    """The idShorts given out within one parent: a second id that maps to the same
    idShort (``press-1`` after ``press_1``) gets a numbered one instead."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def take(self, text: str, prefix: str = "X") -> str:
        base = id_short(text, prefix)
        candidate, number = base, 2
        while candidate.lower() in self._taken:  # some tools compare them case-blind
            candidate, number = f"{base}_{number}", number + 1
        self._taken.add(candidate.lower())
        return candidate
