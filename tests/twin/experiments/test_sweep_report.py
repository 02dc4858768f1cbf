"""write_sweep_report on its own: the files say what the result says, point by
point; how the sweep was run changes nothing but the run's own notes; strict
JSON has no NaN, so a value that is not a number is written as null."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from twin.config.line import load_config
from twin.experiments.doe import parse_spec
from twin.experiments.experiment import Estimate
from twin.experiments.sweep import KEY_KPIS, SweepResult, run_sweep
from twin.experiments.sweep_report import write_sweep_report


@pytest.fixture(scope="module")
def result() -> SweepResult:
    spec = parse_spec(
        {
            "factors": [
                {"name": "buffers.welding", "levels": [2, 6]},
                {"name": "repair_crew.size", "levels": [1, 2]},
            ],
            "replications": 2,
            "hours": 2,
            "warmup_hours": 0.5,
            "seed": 5,
        }
    )
    return run_sweep(spec, load_config())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_every_point_and_kpi_is_in_the_csv_and_the_json(
    result: SweepResult, tmp_path: Path
) -> None:
    written = write_sweep_report(result, tmp_path / "report", {"backend": "serial"})
    assert [path.name for path in written] == [
        "sweep.json",
        "sweep.csv",
        "sweep.md",
        "throughput_vs_wip.png",
        "main_effects.png",
    ]
    document = json.loads(written[0].read_text("utf-8"))
    assert SweepResult.model_validate(document["result"]) == result
    assert document["run"] == {"backend": "serial"}
    rows = read_csv(written[1])
    assert len(rows) == len(result.points)
    for row, point in zip(rows, result.points, strict=True):
        assert int(row["point"]) == point.index
        assert int(row["pareto"]) == int(point.pareto)
        assert int(row["replications"]) == result.spec.replications
        for factor in result.spec.factors:
            assert float(row[factor.name]) == point.values[factor.name]
        for name in KEY_KPIS:
            found = point.kpis.get(name)
            cells = (row[f"{name}_mean"], row[f"{name}_low"], row[f"{name}_high"])
            if found is None:
                assert cells == ("", "", "")
            else:
                assert tuple(float(cell) for cell in cells) == (found.mean, found.low, found.high)
    markdown = written[2].read_text("utf-8")
    assert f"# Sweep of line {result.line}" in markdown
    assert markdown.count("\n| ") >= len(result.points) + 1  # header and a row per point
    for image in written[3:]:
        assert image.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), image.name


def test_how_it_was_run_changes_only_the_runs_notes(result: SweepResult, tmp_path: Path) -> None:
    one = write_sweep_report(result, tmp_path / "one", {"backend": "serial", "elapsed_s": 1.0})
    two = write_sweep_report(result, tmp_path / "two", {"backend": "pool", "elapsed_s": 9.0})
    first, second = (json.loads(paths[0].read_text("utf-8")) for paths in (one, two))
    assert first["result"] == second["result"]
    assert first["run"] != second["run"]
    assert one[1].read_text("utf-8") == two[1].read_text("utf-8")


def test_a_value_that_is_not_a_number_is_written_as_null(
    result: SweepResult, tmp_path: Path
) -> None:
    point = result.points[0]
    name = next(iter(point.kpis))
    broken = point.kpis[name].model_copy(update={"high": math.inf, "half_width": math.nan})
    assert isinstance(broken, Estimate)
    changed = result.model_copy(
        update={"points": [point.model_copy(update={"kpis": {**point.kpis, name: broken}})]}
    )
    written = write_sweep_report(changed, tmp_path / "report")
    text = written[0].read_text("utf-8")
    assert "NaN" not in text
    assert "Infinity" not in text
    estimate = json.loads(text)["result"]["points"][0]["kpis"][name]
    assert estimate["high"] is None
    assert estimate["half_width"] is None
    assert estimate["mean"] == broken.mean
