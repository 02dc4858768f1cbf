"""A predictive-maintenance parts table in the layout of a public dataset (the
AI4I 2020 table of the UCI repository): one row per machining job, free-form
headers with units, a product-quality category, and failure-mode flags beside
the ``Machine failure`` label. Every value is generated here; no row comes from
a third-party file.

    python examples/data/generate_pdm.py [rows] [seed] > table.csv

``pdm_sample.csv`` beside this file is ``write_table(path, 2000, 1)``, written
as Excel writes UTF-8 (with a byte-order mark). The failure rules follow the
published description of the layout: tool wear, heat dissipation (a small
difference of process and air temperature at low speed), power outside a band,
overstrain (wear times torque above a limit by product quality), and rare
random failures.
"""

from __future__ import annotations

import csv
import math
import random
import sys
from pathlib import Path
from typing import IO

HEADER = (
    "UDI",
    "Product ID",
    "Type",
    "Air temperature [K]",
    "Process temperature [K]",
    "Rotational speed [rpm]",
    "Torque [Nm]",
    "Tool wear [min]",
    "Machine failure",
    "TWF",
    "HDF",
    "PWF",
    "OSF",
    "RNF",
)
# Product quality: share of the jobs, tool wear added per job (min), overstrain limit.
QUALITY = {"L": (0.5, 2, 11_000.0), "M": (0.3, 3, 12_000.0), "H": (0.2, 5, 13_000.0)}


def rows(count: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)  # noqa: S311 - generated data, not secrets
    air = 300.0
    wear = 0.0
    worn_at = rng.uniform(200, 240)
    table = []
    for index in range(count):
        kind = rng.choices(list(QUALITY), [q[0] for q in QUALITY.values()])[0]
        air += rng.gauss(0, 0.3) - 0.01 * (air - 300.0)
        process = air + 10.0 + rng.gauss(0, 1.0)
        torque = max(3.0, rng.gauss(40.0, 10.0))
        # Speed falls as torque rises (about constant power), with scatter.
        speed = min(2880.0, max(1170.0, 1540.0 - 15.0 * (torque - 40.0) + rng.gauss(0, 120)))
        wear += QUALITY[kind][1]
        power = torque * speed * 2 * math.pi / 60
        twf = wear >= worn_at and rng.random() < 0.5
        hdf = process - air < 8.6 and speed < 1380
        pwf = power < 3500 or power > 9000
        osf = wear * torque > QUALITY[kind][2]
        rnf = rng.random() < 0.001
        failure = twf or hdf or pwf or osf or rnf
        table.append(
            [
                str(index + 1),
                f"{kind}{47180 + index}",
                kind,
                f"{air:.1f}",
                f"{process:.1f}",
                f"{speed:.0f}",
                f"{torque:.1f}",
                f"{wear:.0f}",
                str(int(failure)),
                *(str(int(flag)) for flag in (twf, hdf, pwf, osf, rnf)),
            ]
        )
        if twf or wear >= worn_at:  # the tool is changed
            wear, worn_at = 0.0, rng.uniform(200, 240)
    return table


def write_rows(handle: IO[str], count: int, seed: int) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows(count, seed))


def write_table(path: Path, count: int, seed: int) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        write_rows(handle, count, seed)


if __name__ == "__main__":
    args = [int(value) for value in sys.argv[1:3]]
    write_rows(sys.stdout, *(args + [2000, 1][len(args) :]))
