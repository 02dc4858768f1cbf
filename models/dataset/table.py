"""A user's own parts table, as it is: one row per part, free-form headers.

The schema (YAML or JSON; ``TableSchema``) says what the table cannot say by
itself, and nothing more:

- ``label``: the column that says a part was defective, and its positive
  value(s): ``{column: Machine failure, positive: [1]}``;
- ``time`` (optional): the column of when each part left, in ``ms``, ``s`` or
  ``iso`` (ISO 8601) ``unit``; without it the rows are in time order, as most
  exports are, and the time split follows the row order;
- ``columns`` (optional): a type for any column, ``float``, ``int``,
  ``category`` or ``ignore``; an undeclared column is a number when every
  non-empty cell is one, a category otherwise;
- ``exclude``: columns left out of the features, such as the failure-mode flags
  of a maintenance table, which are the label by another name. A column that
  alone ranks the label perfectly is reported (``TableRead.warnings``) so that
  it can be excluded;
- ``part_id`` (optional): a column of part numbers;
- ``station`` (default ``csv``) and ``stations`` (a station -> columns map):
  the station a column's feature belongs to. A feature is named
  ``<station>__<column>``, the column's name in lower case with every run of
  other characters an underscore (``Air temperature [K]`` -> ``csv__air_temperature_k``);
  a category column becomes one 0/1 feature per value
  (``csv__type_is_m``), at most ``MAX_LEVELS`` of them;
- ``delimiter`` (``auto``, ``,``, ``;`` or a tab) and ``decimal`` (``auto``, ``.``
  or ``,``): ``auto`` takes the most frequent of the three in the header, and a
  decimal comma where the delimiter is ``;`` and the numbers say so.

A byte-order mark (Excel's UTF-8) is dropped. Every problem raises
``DatasetError`` naming the column (and the line, for a cell).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.dataset.join import SEPARATOR
from models.dataset.rows import DatasetError, PartDataset
from twin.errors import problem_list

MAX_LEVELS = 30
# A made-up time between two rows when the table has no time column: the rows'
# order is all the time split needs.
ROW_STEP_MS = 1000
ColumnKind = Literal["float", "int", "category", "ignore"]
_NUMBER = re.compile(r"^[+-]?(\d+([.]\d*)?|[.]\d+)([eE][+-]?\d+)?$")
_COMMA_NUMBER = re.compile(r"^[+-]?\d+,\d+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelSpec(_Strict):
    column: str = Field(min_length=1, description="The column that says a part was defective.")
    positive: list[str | int | float] = Field(
        default=[1], min_length=1, description="The value(s) that mean defective."
    )


class TimeSpec(_Strict):
    column: str = Field(min_length=1)
    unit: Literal["ms", "s", "iso"] = "ms"


class TableSchema(_Strict):
    """What a parts table cannot say by itself (the module doc)."""

    label: LabelSpec
    time: TimeSpec | None = None
    columns: dict[str, ColumnKind] = Field(default_factory=dict)
    exclude: list[str] = Field(default_factory=list)
    part_id: str | None = None
    station: str = Field(default="csv", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    stations: dict[str, list[str]] = Field(default_factory=dict)
    delimiter: Literal["auto", ",", ";", "\t"] = "auto"
    decimal: Literal["auto", ".", ","] = "auto"


def is_table_schema(data: object) -> bool:
    """A schema of this form (it names a ``label``), not the flat column -> type one."""
    return isinstance(data, dict) and "label" in data


def parse_table_schema(data: object, source: str) -> TableSchema:
    try:
        return TableSchema.model_validate(data)
    except ValidationError as exc:
        raise DatasetError(problem_list(exc, source, "table schema")) from None


@dataclass(frozen=True)
class TableRead:
    parts: PartDataset
    warnings: list[str]
    # Feature name -> the column it came from (a category: "column = value").
    origins: dict[str, str]


def feature_field(column: str) -> str:
    """A column's name as a feature's field: lower case, other characters as ``_``."""
    field = re.sub(r"[^0-9a-z]+", "_", column.lower()).strip("_")
    return field or "column"


def _read_rows(path: Path, schema: TableSchema) -> tuple[list[str], list[list[str]], str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    first = text.split("\n", 1)[0]
    delimiter = schema.delimiter
    if delimiter == "auto":
        delimiter = max((",", ";", "\t"), key=first.count)
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    if not rows:
        raise DatasetError(f"{path}: the file is empty (no header row)")
    header = [name.strip() for name in rows[0]]
    if len(header) < 2:
        raise DatasetError(
            f"{path}: the header has one column ({header[0]!r}); is the delimiter "
            f"{delimiter!r}? Set delimiter in the schema"
        )
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise DatasetError(f"{path}: columns named twice: {', '.join(duplicated)}")
    body = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    return header, body, delimiter


def _number(text: str, decimal: str) -> float:
    if decimal == ",":
        text = text.replace(",", ".")
    if not _NUMBER.match(text):
        raise ValueError(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def read_table(path: str | Path, schema: TableSchema) -> TableRead:
    """The parts of a user's table (the module doc)."""
    file = Path(path)
    header, body, delimiter = _read_rows(file, schema)
    named = [schema.label.column, *schema.columns, *schema.exclude]
    named += [schema.time.column] if schema.time else []
    named += [schema.part_id] if schema.part_id else []
    named += [column for columns in schema.stations.values() for column in columns]
    unknown = [name for name in named if name not in header]
    if unknown:
        raise DatasetError(
            f"{file}: the schema names columns the file does not have: "
            f"{', '.join(map(repr, unknown))}; its columns are {header}"
        )
    cells = {
        name: [row[i].strip() if i < len(row) else "" for row in body]
        for i, name in enumerate(header)
    }
    decimal: str = schema.decimal
    if decimal == "auto":
        decimal = "." if delimiter != ";" else _guess_decimal(cells)
    labels = _labels(file, cells[schema.label.column], schema.label)
    times = _times(file, cells, schema.time, len(body))
    roles = {schema.label.column, *schema.exclude}
    roles |= {schema.time.column} if schema.time else set()
    roles |= {schema.part_id} if schema.part_id else set()
    station_of = {c: s for s, columns in schema.stations.items() for c in columns}
    names: list[str] = []
    columns: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    origins: dict[str, str] = {}
    sources: dict[str, list[str]] = {}  # feature name -> the columns that make it
    for column in header:
        kind = schema.columns.get(column)
        if column in roles or kind == "ignore":
            continue
        values = cells[column]
        if kind is None:
            kind = _infer(file, column, values, decimal)
        prefix = f"{station_of.get(column, schema.station)}{SEPARATOR}{feature_field(column)}"
        if kind == "category":
            levels = sorted({value for value in values if value})
            if len(levels) > MAX_LEVELS:
                raise DatasetError(
                    f"{file}: column {column!r} has {len(levels)} distinct values, more than "
                    f"{MAX_LEVELS} for a category: declare it float, int or ignore"
                )
            for level in levels:
                name = f"{prefix}_is_{feature_field(level)}"
                names.append(name)
                origins[name] = f"{column} = {level}"
                sources.setdefault(name, []).append(column)
                columns.append(np.array([float(v == level) for v in values], dtype=np.float64))
            continue
        names.append(prefix)
        origins[prefix] = column
        sources.setdefault(prefix, []).append(column)
        columns.append(_numbers(file, column, values, decimal, kind))
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise DatasetError(
            f"{file}: columns whose feature names clash: "
            + ", ".join(f"{name} ({' and '.join(sources[name])})" for name in clashes)
            + "; put them under different stations"
        )
    if not names:
        raise DatasetError(f"{file}: no feature columns left after the label, time and exclude")
    rows = len(body)
    part_ids = (
        _numbers(file, schema.part_id, cells[schema.part_id], ".", "int").astype(np.int64)
        if schema.part_id
        else np.arange(rows, dtype=np.int64)
    )
    features = np.column_stack(columns) if columns else np.empty((rows, 0))
    parts = PartDataset(
        tuple(names),
        features,
        labels,
        np.full(rows, "", dtype=np.str_),
        part_ids,
        times,
    )
    parts = parts.take(np.argsort(parts.left_at_ms, kind="stable"))
    return TableRead(parts, _leaks(parts, origins), origins)


def _guess_decimal(cells: dict[str, list[str]]) -> str:
    comma = sum(bool(_COMMA_NUMBER.match(v)) for values in cells.values() for v in values[:200])
    return "," if comma else "."


def _labels(file: Path, values: Sequence[str], spec: LabelSpec) -> np.ndarray[Any, Any]:
    positive = {str(value).strip() for value in spec.positive}
    numeric = {float(value) for value in spec.positive if _is_number(str(value))}
    labels = np.zeros(len(values), dtype=np.int64)
    for index, value in enumerate(values):
        if value == "":
            raise DatasetError(
                f"{file}: column {spec.column!r}, line {index + 2}: the label is empty"
            )
        hit = value in positive or (_is_number(value) and float(value) in numeric)
        labels[index] = int(hit)
    if len(values) and labels.sum() == 0:
        seen = sorted(set(values))[:5]
        raise DatasetError(
            f"{file}: column {spec.column!r}: no row has a positive value {sorted(positive)}; "
            f"its values include {seen}"
        )
    return labels


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text.strip()))


def _times(
    file: Path, cells: dict[str, list[str]], spec: TimeSpec | None, rows: int
) -> np.ndarray[Any, np.dtype[np.int64]]:
    if spec is None:
        return np.arange(rows, dtype=np.int64) * ROW_STEP_MS
    values = cells[spec.column]
    times = np.zeros(rows, dtype=np.int64)
    for index, value in enumerate(values):
        try:
            if spec.unit == "iso":
                stamp = datetime.fromisoformat(value)
                times[index] = int(stamp.timestamp() * 1000)
            else:
                number = _number(value, ".")
                times[index] = int(number * (1000 if spec.unit == "s" else 1))
        except ValueError:
            wanted = "an ISO 8601 time" if spec.unit == "iso" else f"a number of {spec.unit}"
            raise DatasetError(
                f"{file}: column {spec.column!r}, line {index + 2}: {value!r} is not {wanted}"
            ) from None
    return times


def _infer(file: Path, column: str, values: Sequence[str], decimal: str) -> ColumnKind:
    filled = [value for value in values if value]
    if not filled:
        return "ignore"
    if all(_is_number(value.replace(",", ".") if decimal == "," else value) for value in filled):
        return "float"
    if decimal == "." and all(_COMMA_NUMBER.match(v) or _is_number(v) for v in filled):
        example = next(v for v in filled if "," in v)
        raise DatasetError(
            f"{file}: column {column!r} has decimal commas ({example!r}): "
            "set decimal: ',' in the schema"
        )
    return "category"


def _numbers(
    file: Path, column: str, values: Sequence[str], decimal: str, kind: str
) -> np.ndarray[Any, np.dtype[np.float64]]:
    numbers = np.full(len(values), np.nan)
    for index, value in enumerate(values):
        if value == "":
            continue
        try:
            number = _number(value, decimal)
        except ValueError:
            hint = " (a decimal comma: set decimal: ',')" if _COMMA_NUMBER.match(value) else ""
            raise DatasetError(
                f"{file}: column {column!r}, line {index + 2}: {value!r} is not a number{hint}"
            ) from None
        if kind == "int" and number != int(number):
            raise DatasetError(
                f"{file}: column {column!r}, line {index + 2}: {value!r} is not a whole number"
            )
        numbers[index] = number
    return numbers


def _leaks(parts: PartDataset, origins: dict[str, str]) -> list[str]:
    """A warning for each feature that alone separates the label perfectly."""
    labels = parts.defect
    if labels.min() == labels.max():
        return []
    found = []
    for index, name in enumerate(parts.feature_names):
        column = parts.features[:, index]
        known = ~np.isnan(column)
        if known.sum() < len(column) or len(np.unique(column)) < 2:
            continue
        positive, negative = column[labels == 1], column[labels == 0]
        if positive.min() > negative.max() or positive.max() < negative.min():
            found.append(
                f"column {origins[name]!r} alone separates the label perfectly: it may be the "
                "label by another name; list it under exclude if so"
            )
    return found


__all__ = [
    "MAX_LEVELS",
    "LabelSpec",
    "TableRead",
    "TableSchema",
    "TimeSpec",
    "feature_field",
    "is_table_schema",
    "parse_table_schema",
    "read_table",
]
