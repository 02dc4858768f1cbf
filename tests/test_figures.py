"""Every registered figure in README.md and docs/ is the one its result file holds.

``docs/figures.toml`` lists each quoted figure: the document, a piece of text
that finds its line there (a table row's label), the result file a benchmark
wrote (``bench/results/*.json``), the JSON path in it and the format. The
figure as formatted from the file must be on that line: a number edited by hand
in a document, or a result file re-measured without the documents following,
fails here.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO

REGISTRY = REPO / "docs" / "figures.toml"


def _entries() -> list[dict[str, Any]]:
    figures: list[dict[str, Any]] = tomllib.loads(REGISTRY.read_text("utf-8"))["figure"]
    return figures


def _value(data: Any, path: str) -> Any:
    for key in path.split("."):
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data


def formatted(entry: dict[str, Any]) -> str:
    data = json.loads((REPO / entry["file"]).read_text("utf-8"))
    return str(entry["format"]).format(_value(data, entry["path"]))


def _id(entry: dict[str, Any]) -> str:
    return f"{entry['doc']}:{entry['line']}:{entry['path']}"


def problem(entry: dict[str, Any], text: str) -> str | None:
    """What is wrong with the document ``text`` for this figure; None if nothing."""
    lines = [line for line in text.splitlines() if entry["line"] in line]
    if len(lines) != 1:
        return f"{entry['line']!r} should find one line in {entry['doc']}: {lines}"
    figure = formatted(entry)
    if figure not in lines[0]:
        return f"{entry['doc']} shows {lines[0]!r}; {entry['file']} says {figure}"
    return None


@pytest.mark.parametrize("entry", _entries(), ids=_id)
def test_a_quoted_figure_is_its_result_files(entry: dict[str, Any]) -> None:
    assert problem(entry, (REPO / entry["doc"]).read_text("utf-8")) is None


def test_the_registry_names_only_results_that_a_benchmark_writes() -> None:
    for entry in _entries():
        path = Path(entry["file"])
        assert path.parts[:2] == ("bench", "results"), entry
        script = REPO / "bench" / f"{path.stem}.py"
        assert script.is_file(), f"no bench/{path.stem}.py writes {path}"
        assert f'"{path.stem}"' in script.read_text("utf-8"), f"{script} does not emit {path.stem}"


@pytest.mark.parametrize("entry", _entries()[:3], ids=_id)
def test_a_figure_edited_by_hand_is_caught(entry: dict[str, Any]) -> None:
    """The check itself, on the real document: one digit of the figure changed fails."""
    text = (REPO / entry["doc"]).read_text("utf-8")
    figure = formatted(entry)
    digit = next(c for c in figure if c.isdigit())
    edited_figure = figure.replace(digit, str((int(digit) + 1) % 10), 1)
    line = next(line for line in text.splitlines() if entry["line"] in line)
    edited = text.replace(line, line.replace(figure, edited_figure))
    assert problem(entry, edited) is not None
