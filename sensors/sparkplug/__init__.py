"""Sparkplug B 3.0 for the line, beside the JSON tree (docs/sparkplug.md).

- ``codec``: the Sparkplug B payload (our own ``sparkplug_b.proto``, compiled by
  ``protoc``) to and from metrics.
- ``metrics``: the metric map, the contract's messages as metrics and back.
- ``topics``: the ``spBv1.0`` namespace and the line's group and edge node ids.
- ``edge``: the line as an edge node, fed by the plant publisher's tap.
- ``consumer``: the twin's ingest of a line that speaks Sparkplug B.

``encode_telemetry_ddata`` turns one telemetry message of the JSON contract into
the DDATA payload the edge node sends for it, for comparing the two encodings'
size and cost on the same samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sensors.sparkplug.codec import Metric, encode_payload
from sensors.sparkplug.metrics import TELEMETRY, message_metrics, station_metric_defs
from twin.contract import SENSOR_FIELDS

# The aliases of a station's telemetry metrics when it has every sensor and the
# node none before it: what the edge node gives the first station of such a line.
_TELEMETRY_DEFS = {
    definition.name: definition
    for definition in station_metric_defs(SENSOR_FIELDS, (), ())
    if definition.name.startswith(TELEMETRY)
}
TELEMETRY_ALIASES: dict[str, int] = {name: alias for alias, name in enumerate(_TELEMETRY_DEFS)}


def encode_telemetry_ddata(
    message: Mapping[str, Any], *, seq: int = 0, aliases: Mapping[str, int] | None = None
) -> bytes:
    """The DDATA payload of one telemetry message (the contract's fields, as the
    publisher's tap hands them over): metrics by alias (``aliases``, default
    ``TELEMETRY_ALIASES``), the message's ``ts_ms`` as the timestamps, ``seq`` as the
    node's sequence number."""
    aliases = TELEMETRY_ALIASES if aliases is None else aliases
    stamp = int(message["ts_ms"])
    metrics = [
        Metric(value, _TELEMETRY_DEFS[name].datatype, alias=aliases[name], timestamp=stamp)
        for name, value in message_metrics("telemetry", message)
    ]
    return encode_payload(metrics, timestamp=stamp, seq=seq)


__all__ = ["TELEMETRY_ALIASES", "encode_telemetry_ddata"]
