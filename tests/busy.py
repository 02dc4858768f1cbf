"""Run a command while every core is kept busy by other CPU-bound processes.

``make test-busy`` runs the whole suite this way: a test that passes on a quiet
machine but fails when the cores are busy asserts a timing guess, not a
guarantee. The load is Debian's ``stress-ng --cpu N`` where it is installed,
else N busy Python processes; N defaults to the number of cores.

    python tests/busy.py [--workers N] -- COMMAND [ARGS...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys

_SPIN = "while True: pass"


def _load(workers: int) -> list[subprocess.Popen[bytes]]:
    stress = shutil.which("stress-ng")
    if stress is not None:
        return [subprocess.Popen([stress, "--cpu", str(workers), "--quiet"])]
    return [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(workers)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        parser.error("give the command to run after --")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1 (got {args.workers})")
    load = _load(args.workers)
    sys.stderr.write(f"busy.py: {args.workers} CPU-bound load process(es) running\n")
    try:
        return subprocess.call(command)
    finally:
        for process in load:
            process.send_signal(signal.SIGTERM)
        for process in load:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
