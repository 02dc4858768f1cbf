"""Every registered figure in README.md and docs/ is the one its result file holds.

``docs/figures.toml`` lists each quoted figure: the document, a piece of text
that finds its line there (a table row's label), the result file a benchmark
wrote (``bench/results/*.json``), the JSON path in it and the format. The
figure as formatted from the file must be on that line: a number edited by hand
in a document, or a result file re-measured without the documents following,
fails here.

A table sits between ``<!-- figures:NAME -->`` markers instead, and
``bench/_tables.py`` renders it from its result file: the block must be exactly
what the file renders.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO

REGISTRY = REPO / "docs" / "figures.toml"

sys.path.insert(0, str(REPO / "bench"))
import _tables  # noqa: E402


def _entries() -> list[dict[str, Any]]:
    figures: list[dict[str, Any]] = tomllib.loads(REGISTRY.read_text("utf-8"))["figure"]
    return figures


def _value(data: Any, path: str) -> Any:
    """The value at a dotted path; ``min`` or ``max`` of a list (a range's ends)."""
    for key in path.split("."):
        if isinstance(data, list) and key in ("min", "max"):
            data = min(data) if key == "min" else max(data)
        else:
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


# Reports a command wrote, committed as they came out (docs/tuning.md shows the session).
COMMAND_REPORTS = ("docs", "sample-report")


def test_the_registry_names_only_results_that_a_benchmark_or_command_writes() -> None:
    for entry in _entries():
        path = Path(entry["file"])
        if path.parts[:2] == COMMAND_REPORTS:
            assert (REPO / path).is_file(), entry
            continue
        assert path.parts[:2] == ("bench", "results"), entry
        assert _emitting_script(path.stem) is None, _emitting_script(path.stem)


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


def _emitting_script(stem: str) -> str | None:
    """What is wrong with ``bench/<stem>.py`` as the writer of ``bench/results/<stem>.json``."""
    script = REPO / "bench" / f"{stem}.py"
    if not script.is_file():
        return f"no bench/{stem}.py writes bench/results/{stem}.json"
    if f'"{stem}"' not in script.read_text("utf-8"):
        return f"{script} does not emit {stem}"
    return None


def block_problem(name: str, text: str) -> str | None:
    """What is wrong with a block's ``text``; None if it is what its result file renders."""
    if name not in _tables.TABLES:
        return f"no renderer for the block {name!r} in bench/_tables.py"
    rendered = _tables.render(name)
    if text != rendered:
        return f"the block {name!r} is not what its result file renders:\n{rendered}"
    return None


def _blocks() -> list[tuple[Path, str, str]]:
    return list(_tables.blocks())


@pytest.mark.parametrize(
    ("doc", "name", "text"), _blocks(), ids=[f"{d.name}:{n}" for d, n, _ in _blocks()]
)
def test_a_generated_table_is_what_its_result_file_renders(doc: Path, name: str, text: str) -> None:
    assert block_problem(name, text) is None, f"{doc.name}: run bench/_tables.py or the bench"


def test_every_table_is_in_a_document_and_written_by_a_benchmark() -> None:
    shown = {name for _, name, _ in _blocks()}
    for name, (stem, _) in _tables.TABLES.items():
        assert name in shown, f"no document shows the table {name!r}"
        assert _emitting_script(stem) is None, _emitting_script(stem)


def test_a_table_edited_by_hand_is_caught() -> None:
    """The check itself, on the real blocks: one digit changed in any of them fails."""
    for _, name, text in _blocks():
        digit = re.search(r"\d", text.split("|---", 1)[-1])
        assert digit is not None, name
        position = len(text) - len(text.split("|---", 1)[-1]) + digit.start()
        edited = text[:position] + str((int(text[position]) + 1) % 10) + text[position + 1 :]
        assert block_problem(name, edited) is not None, name
