"""Mutation testing of the core logic, one module at a time: ``make mutation``.

For each module in ``tests/mutation/modules.toml``, mutmut mutates that one file
and runs only the module's fast unit tests against every mutant. The score is
killed / (mutants - equivalent); a mutant is killed when a test fails (or hangs)
with it. ``tests/mutation/equivalent.toml`` lists the mutants that cannot change
behaviour, each with its reason; they are matched on the mutated line's text, not
on mutmut's numbering, which shifts whenever the code changes. An entry that
matches no surviving mutant is an error: the code moved on, or a test kills it
(then it was never equivalent).

Each module runs in its own directory, ``build/mutation/<name>/``, holding links to
the packages and tests and a pyproject.toml whose ``[tool.mutmut]`` table is the
repository's plus the file to mutate and the tests to run.

    python tests/mutation/run.py [MODULE ...] [--jobs N] [--survivors] [--report]

Exit status: 0 when every module met its target, 1 when one missed it (or the
equivalents file is stale), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "tests" / "mutation"
WORK = REPO / "build" / "mutation"
# What a mutant's run needs beside the pyproject: the packages mutmut copies
# (source_paths in [tool.mutmut]), the tests and what they read (also_copy).
LINKED = ("twin", "sensors", "models", "tests", "examples")

# mutmut's exit codes of a mutant's test run (mutmut/stats.py): a failing test or
# pytest's internal error kills it, so does a run stopped for taking too long or
# a mutant the type checker rejects. "No tests" (33) means no selected test calls
# the mutated function: it survived.
KILLED_CODES = frozenset({1, 3, 24, -24, 152, 255, 36, 37})
NOT_RUN_CODES = frozenset({None, 2})


@dataclass(frozen=True)
class Module:
    name: str
    path: str
    target: float
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Mutant:
    key: str
    function: str
    original: str
    mutated: str
    exit_code: int | None

    @property
    def killed(self) -> bool:
        return self.exit_code in KILLED_CODES


@dataclass(frozen=True)
class Equivalent:
    module: str
    function: str
    original: str
    mutated: str
    reason: str

    def matches(self, module: Module, mutant: Mutant) -> bool:
        return (
            self.module == module.path
            and self.function == mutant.function
            and _squash(self.original) == _squash(mutant.original)
            and _squash(self.mutated) == _squash(mutant.mutated)
        )


EQUIVALENT_KEYS = ("module", "function", "original", "mutated", "reason")


@dataclass
class Score:
    module: Module
    mutants: list[Mutant]
    equivalent: list[Mutant] = field(default_factory=list)
    survived: list[Mutant] = field(default_factory=list)
    killed: int = 0
    not_run: int = 0

    @property
    def ratio(self) -> float | None:
        counted = len(self.mutants) - len(self.equivalent)
        return self.killed / counted if counted > 0 else None

    @property
    def met(self) -> bool:
        return self.not_run == 0 and self.ratio is not None and self.ratio >= self.module.target


def _squash(text: str) -> str:
    return " ".join(text.split())


def load_modules(path: Path = HERE / "modules.toml") -> list[Module]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [
        Module(
            name=entry["name"],
            path=entry["path"],
            target=float(entry["target"]),
            tests=tuple(entry["tests"]),
        )
        for entry in data["module"]
    ]


def load_equivalents(path: Path = HERE / "equivalent.toml") -> list[Equivalent]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    entries = []
    for number, entry in enumerate(data.get("equivalent", []), start=1):
        missing = set(EQUIVALENT_KEYS) - entry.keys()
        if missing:
            raise SystemExit(
                f"{path.name}: equivalent #{number} lacks {', '.join(sorted(missing))}"
            )
        if not entry["reason"].strip():
            raise SystemExit(f"{path.name}: equivalent #{number} gives no reason")
        entries.append(Equivalent(**{key: str(entry[key]) for key in EQUIVALENT_KEYS}))
    return entries


def _toml_list(items: tuple[str, ...] | list[str]) -> str:
    # JSON strings of plain paths are valid TOML basic strings.
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def prepare(module: Module, *, fresh: bool) -> Path:
    work = WORK / module.name
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = work / name
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(REPO / name, work))
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    header = "[tool.mutmut]\n"
    if header not in pyproject:
        raise SystemExit("pyproject.toml has no [tool.mutmut] table")
    added = (
        f"only_mutate = {_toml_list([module.path])}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(module.tests)}\n"
    )
    (work / "pyproject.toml").write_text(pyproject.replace(header, header + added, 1), "utf-8")
    return work


def run_mutmut(module: Module, work: Path, *, jobs: int, keys: list[str]) -> None:
    mutmut = Path(sys.executable).parent / "mutmut"
    command = [str(mutmut), "run", "--max-children", str(jobs), *keys]
    log = work / "mutmut.log"
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run(command, cwd=work, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"mutmut failed on {module.path} (exit {done.returncode}); log: {log}")


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.setdefault(node.name, node)
    return found


def _lines(source: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    # Signature (defaults are mutated too) and body, without the generated name,
    # in which the mutant and the original differ.
    lines = [line.strip() for line in source.splitlines()[node.lineno - 1 : node.end_lineno]]
    lines[0] = lines[0].replace(node.name, "", 1)
    return lines


def read_mutants(module: Module, work: Path) -> list[Mutant]:
    mutated_file = work / "mutants" / module.path
    meta_file = work / "mutants" / (module.path + ".meta")
    if not meta_file.exists():
        raise SystemExit(f"no mutmut results for {module.path}: run without --report first")
    exit_codes: dict[str, int | None] = json.loads(meta_file.read_text("utf-8"))["exit_code_by_key"]
    source = mutated_file.read_text(encoding="utf-8")
    functions = _functions(ast.parse(source))
    mutants = []
    for key, exit_code in sorted(exit_codes.items(), key=lambda item: _natural(item[0])):
        name = key.rsplit(".", 1)[-1]
        mangled = name.rsplit("__mutmut_", 1)[0]
        original_lines = _lines(source, functions[mangled + "__mutmut_orig"])
        mutant_lines = _lines(source, functions[name])
        removed, added = [], []
        for line in difflib.ndiff(original_lines, mutant_lines):
            if line.startswith("- "):
                removed.append(line[2:])
            elif line.startswith("+ "):
                added.append(line[2:])
        function = mangled.removeprefix("x_").removeprefix("x\u01c1").replace("\u01c1", ".")
        mutants.append(Mutant(key, function, " / ".join(removed), " / ".join(added), exit_code))
    return mutants


def _natural(key: str) -> tuple[str, int]:
    stem, _, number = key.rpartition("__mutmut_")
    return stem, int(number) if number.isdigit() else -1


def score(module: Module, mutants: list[Mutant], equivalents: list[Equivalent]) -> Score:
    result = Score(module, mutants)
    for mutant in mutants:
        if mutant.killed:
            result.killed += 1
        elif any(entry.matches(module, mutant) for entry in equivalents):
            result.equivalent.append(mutant)
        else:
            if mutant.exit_code in NOT_RUN_CODES:
                result.not_run += 1
            result.survived.append(mutant)
    return result


def stale_equivalents(
    module: Module, mutants: list[Mutant], equivalents: list[Equivalent]
) -> list[str]:
    """Entries of this module that match no surviving mutant, and why."""
    problems = []
    for entry in equivalents:
        if entry.module != module.path:
            continue
        matched = [mutant for mutant in mutants if entry.matches(module, mutant)]
        where = f"{entry.module} {entry.function}: {entry.original!r} -> {entry.mutated!r}"
        if not matched:
            problems.append(f"{where}: no such mutant any more")
        elif all(mutant.killed for mutant in matched):
            problems.append(f"{where}: a test kills it, so it is not equivalent")
    return problems


def table(scores: list[Score]) -> str:
    header = ("module", "file", "mutants", "killed", "equivalent", "survived")
    header += ("score", "target", "met")
    rows = []
    for item in scores:
        ratio = item.ratio
        rows.append(
            (
                item.module.name,
                item.module.path,
                str(len(item.mutants)),
                str(item.killed),
                str(len(item.equivalent)),
                str(len(item.survived)),
                "n/a" if ratio is None else f"{ratio:.1%}",
                f"{item.module.target:.0%}",
                "yes" if item.met else "no",
            )
        )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    modules = load_modules()
    names = [module.name for module in modules]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"any of {', '.join(names)}")
    parser.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="mutants run at once"
    )
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="run again only the mutants that survived the last run (after adding a test)",
    )
    parser.add_argument(
        "--report", action="store_true", help="print the last run's results, run nothing"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(names))
    if unknown:
        parser.error(f"unknown module {', '.join(unknown)}; expected any of {', '.join(names)}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    chosen = [module for module in modules if not args.modules or module.name in args.modules]
    equivalents = load_equivalents()

    scores, problems = [], []
    for module in chosen:
        if not args.report:
            print(f"== {module.name}: mutating {module.path}, tests {' '.join(module.tests)}")
            fresh = not args.survivors
            work = prepare(module, fresh=fresh)
            keys: list[str] = []
            if args.survivors:
                keys = [mutant.key for mutant in read_mutants(module, work) if not mutant.killed]
                if not keys:
                    print("   no survivors to run again")
            if fresh or keys:
                run_mutmut(module, work, jobs=args.jobs, keys=keys)
        work = WORK / module.name
        mutants = read_mutants(module, work)
        result = score(module, mutants, equivalents)
        scores.append(result)
        problems += stale_equivalents(module, mutants, equivalents)
        if result.not_run:
            print(f"   {result.not_run} mutants were not run (mutmut interrupted?)")
        for mutant in result.survived:
            print(f"   survived {mutant.key} [{mutant.function}]")
            print(f"     - {mutant.original}")
            print(f"     + {mutant.mutated}")

    print()
    print(table(scores))
    for problem in problems:
        print(f"equivalent.toml: {problem}", file=sys.stderr)
    missed = [item.module.name for item in scores if not item.met]
    if missed:
        print(f"target missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
