"""Where a benchmark's figures go: the JSON line on stdout, and a result file.

Every figure quoted in README.md or docs/ comes from a file in ``bench/results``
that a benchmark wrote (``docs/figures.toml`` says which figure comes from
which file; ``tests/test_figures.py`` checks the documents against them). Every
run writes its file, a quick one (``--quick``) marked ``"quick": true``, so the
documents say which kind of run their figures come from; a new run whose
figures differ from the quoted ones fails that test until the documents follow.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def emit(name: str, figures: dict[str, Any], *, quick: bool = False, keep: bool = True) -> None:
    """Keep ``figures`` in ``bench/results/<name>.json``; print them as the last line.

    ``keep=False`` (a partial run, say on some of the lines only) prints them and
    leaves the result file as it was, since its figures stand for the whole run.
    """
    record = {
        **figures,
        "quick": quick,
        "measured_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "arch": platform.machine(),
            "load_1min": round(os.getloadavg()[0], 2),
        },
    }
    if keep:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{name}.json"
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    else:
        print(f"a partial run: bench/results/{name}.json is left as it was", flush=True)
    print(json.dumps(figures), flush=True)


def load_test_module(name: str, relative: str) -> ModuleType:
    """A module of the test suite (``relative`` to tests/), for a script that
    reports the figures a test measures. tests/ is appended to the path, so
    that ``models`` and the other packages stay the project's (imported first)."""
    tests = Path(__file__).resolve().parents[1] / "tests"
    # tests/ has folders named like the packages (tests/models, tests/twin, ...):
    # on the path, a folder without __init__.py would be taken for the package
    # itself unless the package is imported first.
    for package in ("twin", "sensors", "models", "api"):
        importlib.import_module(package)
    if str(tests) not in sys.path:
        sys.path.append(str(tests))
    spec = importlib.util.spec_from_file_location(name, tests / relative)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the test module {relative} from {tests}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module
