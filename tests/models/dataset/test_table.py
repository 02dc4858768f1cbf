"""A user's parts table as it is: free-form headers, a category, a byte-order
mark, semicolons and decimal commas, read with a schema that names only what the
table cannot say. Expected values are read from the file here, by the standard
library, never typed in."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import cli_main as run

from models.dataset.rows import DatasetError
from models.dataset.table import (
    MAX_LEVELS,
    feature_field,
    parse_table_schema,
    read_table,
)
from models.registry.store import ModelRegistry

DATA = Path(__file__).resolve().parents[3] / "examples" / "data"
SAMPLE = DATA / "pdm_sample.csv"
SCHEMA = DATA / "pdm_sample.schema.yaml"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_pdm", DATA / "generate_pdm.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema(**changes: Any) -> Any:
    data = yaml.safe_load(SCHEMA.read_text("utf-8"))
    data.update(changes)
    return parse_table_schema(data, "test schema")


def sample_rows() -> list[dict[str, str]]:
    with SAMPLE.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_shipped_sample_is_what_its_generator_writes(tmp_path: Path) -> None:
    again = tmp_path / "again.csv"
    generator().write_table(again, 2000, 1)
    assert again.read_bytes() == SAMPLE.read_bytes()
    assert SAMPLE.read_bytes().startswith(b"\xef\xbb\xbf")  # as Excel writes UTF-8


def test_the_sample_reads_with_its_schema_and_no_preprocessing() -> None:
    rows = sample_rows()
    table = read_table(SAMPLE, schema())
    parts = table.parts
    assert len(parts) == len(rows)
    assert parts.defect.tolist() == [int(row["Machine failure"]) for row in rows]
    # Rows in file order (no time column), a category one 0/1 feature per value.
    types = sorted({row["Type"] for row in rows})
    assert [f"mill__type_is_{t.lower()}" for t in types] == [
        name for name in parts.feature_names if name.startswith("mill__type_is_")
    ]
    for level in types:
        column = parts.column(f"mill__type_is_{level.lower()}")
        assert column.tolist() == [float(row["Type"] == level) for row in rows]
    torque = parts.column("mill__torque_nm")
    assert torque.tolist() == [float(row["Torque [Nm]"]) for row in rows]
    # The failure modes (excluded), the row number and the serial number are not features.
    fields = {name.split("__", 1)[1] for name in parts.feature_names}
    for column in ("TWF", "HDF", "PWF", "OSF", "RNF", "UDI", "Product ID", "Machine failure"):
        assert feature_field(column) not in fields, column
    assert table.origins["mill__air_temperature_k"] == "Air temperature [K]"
    assert table.warnings == []


def test_semicolons_and_decimal_commas_read_the_same(tmp_path: Path) -> None:
    rows = sample_rows()
    european = tmp_path / "european.csv"
    with european.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(rows[0].keys())
        for row in rows:
            writer.writerow(value.replace(".", ",") for value in row.values())
    plain = read_table(SAMPLE, schema()).parts
    read = read_table(european, schema()).parts
    assert read.feature_names == plain.feature_names
    np.testing.assert_array_equal(read.features, plain.features)
    np.testing.assert_array_equal(read.defect, plain.defect)
    # Said explicitly, the same; a decimal comma the schema denies is named.
    stated = read_table(european, schema(delimiter=";", decimal=",")).parts
    np.testing.assert_array_equal(stated.features, plain.features)
    with pytest.raises(DatasetError, match=r"column 'Air temperature \[K\]'.*decimal"):
        read_table(european, schema(delimiter=";", decimal="."))


def test_a_column_that_is_the_label_by_another_name_is_reported(tmp_path: Path) -> None:
    rows = sample_rows()
    copied = tmp_path / "copied.csv"
    with copied.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*rows[0].keys(), "Failure flag (QA)"])
        for row in rows:
            writer.writerow([*row.values(), row["Machine failure"]])
    table = read_table(copied, schema())
    (warning,) = table.warnings
    assert "'Failure flag (QA)' alone separates the label perfectly" in warning
    assert "exclude" in warning
    assert "mill__failure_flag_qa" in table.parts.feature_names
    # Excluded, it is gone and so is the warning.
    clean = read_table(
        copied, schema(exclude=["TWF", "HDF", "PWF", "OSF", "RNF", "Failure flag (QA)"])
    )
    assert clean.warnings == []
    assert "mill__failure_flag_qa" not in clean.parts.feature_names


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"label": {"column": "Failure"}}, "does not have: 'Failure'"),
        ({"label": {"column": "Machine failure", "positive": ["yes"]}}, "no row has a positive"),
        ({"columns": {"Product ID": "category", "UDI": "ignore"}}, "'Product ID' has 2000"),
        (
            {"time": {"column": "Type", "unit": "iso"}},
            r"'Type', line 2: '\w' is not an ISO 8601 time",
        ),
        ({"columns": {"UDI": "ignore", "Product ID": "ignore", "Type": "float"}}, "not a number"),
    ],
)
def test_a_schema_that_does_not_fit_the_table_is_named(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        read_table(SAMPLE, schema(**changes))


def test_columns_whose_feature_names_clash_are_named(tmp_path: Path) -> None:
    path = tmp_path / "clash.csv"
    path.write_text("Torque [Nm],torque (Nm),fail\n1,2,0\n3,4,1\n", "utf-8")
    table_schema = parse_table_schema({"label": {"column": "fail"}}, "s")
    with pytest.raises(DatasetError, match=r"csv__torque_nm \(Torque \[Nm\] and torque \(Nm\)\)"):
        read_table(path, table_schema)
    grouped = parse_table_schema(
        {"label": {"column": "fail"}, "stations": {"press": ["torque (Nm)"]}}, "s"
    )
    parts = read_table(path, grouped).parts
    assert parts.feature_names == ("csv__torque_nm", "press__torque_nm")


def test_a_category_with_too_many_values_is_named(tmp_path: Path) -> None:
    path = tmp_path / "serials.csv"
    lines = ["serial,fail"] + [f"S{i},{i % 2}" for i in range(MAX_LEVELS + 1)]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(DatasetError, match=f"'serial' has {MAX_LEVELS + 1} distinct values"):
        read_table(path, parse_table_schema({"label": {"column": "fail"}}, "s"))


def test_a_schema_with_a_bad_field_names_it() -> None:
    with pytest.raises(DatasetError, match="label.column"):
        parse_table_schema({"label": {"colum": "x"}}, "s.yaml")
    with pytest.raises(DatasetError, match="delimiter"):
        parse_table_schema({"label": {"column": "x"}, "delimiter": "|"}, "s.yaml")


def test_iso_times_order_the_parts(tmp_path: Path) -> None:
    path = tmp_path / "timed.csv"
    path.write_text(
        "when,Force (kN),Scrap\n"
        "2026-01-02T08:00:00+00:00,1.5,no\n"
        "2026-01-01T08:00:00+00:00,2.5,yes\n"
        "2026-01-03T08:00:00+00:00,,no\n",
        "utf-8",
    )
    parts = read_table(
        path,
        parse_table_schema(
            {
                "label": {"column": "Scrap", "positive": ["yes"]},
                "time": {"column": "when", "unit": "iso"},
            },
            "s",
        ),
    ).parts
    assert parts.defect.tolist() == [1, 0, 0]  # the earliest first
    assert parts.feature_names == ("csv__force_kn",)
    assert parts.column("csv__force_kn")[:2].tolist() == [2.5, 1.5]
    assert np.isnan(parts.column("csv__force_kn")[2])
    assert np.diff(parts.left_at_ms).tolist() == [86_400_000, 86_400_000]


@pytest.mark.slow
def test_the_sample_trains_from_the_command_line_and_stays_off_the_live_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models, result = tmp_path / "models", tmp_path / "result.json"
    base = ["train", "--source", "csv", "--csv", str(SAMPLE), "--schema", str(SCHEMA)]
    base += ["--models-path", str(models), "--report-dir", str(tmp_path / "report")]
    assert run(*base, "--result-json", str(result)) == 0
    out = capsys.readouterr().out
    assert "registered defect v1 (NOT active)" in out
    registry = ModelRegistry(models)
    assert registry.active_version("defect") is None
    card = registry.get("defect", 1).card
    assert card["data"]["feature_names"] == list(read_table(SAMPLE, schema()).parts.feature_names)
    assert card["metrics"]["baseline"]["roc_auc"] > 0.5
    assert json.loads(result.read_text())["registered"][0]["active"] is False
    # Asked to go live, a table whose features are not the line's is refused by name.
    assert run(*base, "--activate") == 2
    err = capsys.readouterr().err
    assert "--activate: the CSV's features name stations the line does not have (mill" in err
