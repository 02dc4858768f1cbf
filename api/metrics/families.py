"""The names, labels and line-labelled families every collector of factory-twin uses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from twin.state.views import LineView

PREFIX = "factory_twin"
# The Prometheus text format 0.0.4, what ``generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LINE_LABELS = ("site", "area", "line")


class HealthSource(Protocol):
    """A part of the data path that reports its counters (ingest, publisher, writer)."""

    def health(self) -> dict[str, Any]: ...


def metric_name(name: str) -> str:
    return f"{PREFIX}_{name}"


def as_number(value: object) -> float | None:
    """``value`` as a sample, or None (left out) when it is not a number."""
    if isinstance(value, bool | int | float):
        return float(value)
    return None


class LineFamilies:
    """Families labelled with the line (and station), built for one scrape."""

    def __init__(self, view: LineView) -> None:
        self.labels = (view.site, view.area, view.line)

    # ``value`` may come from a health dict: anything not a number is left out.
    def gauge(self, name: str, documentation: str, value: object) -> GaugeMetricFamily:
        family = GaugeMetricFamily(metric_name(name), documentation, labels=LINE_LABELS)
        number = as_number(value)
        if number is not None:
            family.add_metric(list(self.labels), number)
        return family

    def counter(self, name: str, documentation: str, value: object) -> CounterMetricFamily:
        family = CounterMetricFamily(metric_name(name), documentation, labels=LINE_LABELS)
        number = as_number(value)
        if number is not None:
            family.add_metric(list(self.labels), number)
        return family

    def labelled_gauge(
        self, name: str, documentation: str, extra: Iterable[str]
    ) -> GaugeMetricFamily:
        return GaugeMetricFamily(metric_name(name), documentation, labels=[*LINE_LABELS, *extra])

    def labelled_counter(
        self, name: str, documentation: str, extra: Iterable[str]
    ) -> CounterMetricFamily:
        return CounterMetricFamily(metric_name(name), documentation, labels=[*LINE_LABELS, *extra])

    def add(
        self, family: GaugeMetricFamily | CounterMetricFamily, value: object, *extra: str
    ) -> None:
        number = as_number(value)
        if number is not None:
            family.add_metric([*self.labels, *extra], number)
