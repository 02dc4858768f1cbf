"""Argument types and the parser of the ``factory-twin`` command line.

Bad input on the command line is the user's to fix, so it gets one line that
names the flag and what is wrong, and exit code 2: never a traceback, never a
run that starts with a value that cannot mean anything (``--hours nan``,
``--workers 0``). Each numeric flag says its range here, once, and argparse
reports a value outside it as ``argument --hours: must be > 0 (got 0)``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (the usage itself is a
    ``--help`` away), with exit code 2 as argparse has it."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _bounds_text(low: float | None, high: float | None, low_open: bool) -> str:
    if low is not None and high is not None:
        return f"must be {'>' if low_open else '>='} {low:g} and <= {high:g}"
    if low is not None:
        return f"must be {'>' if low_open else '>='} {low:g}"
    return f"must be <= {high:g}"


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
) -> Callable[[str], float]:
    """A finite float in [low, high] (or (low, high] with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number (got {text!r})") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number (got {text!r})")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and value > high
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"{_bounds_text(low, high, low_open)} (got {text})")
        return value

    parse.__name__ = "number"
    return parse


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number (got {text!r})") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{_bounds_text(low, high, False)} (got {text})")
        return value

    parse.__name__ = "integer"
    return parse


# Seeds feed numpy and scikit-learn, which take 0 .. 2**32 - 1.
SEED = integer(0, 2**32 - 1)
PORT = integer(0, 65535)
# A simulated span: above zero, and at most about eleven years, which the
# simulator needs hours to run; beyond it is a typo, not a plan.
HOURS = number(0, 100_000, low_open=True)
WARMUP_HOURS = number(0, 100_000)
REPLICATIONS = integer(1, 10_000)
WORKERS = integer(1, 1024)
TIMEOUT_S = number(0, 3600, low_open=True)
FRACTION = number(0, 1, low_open=True)
PROBABILITY = number(0, 1)
