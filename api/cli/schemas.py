"""``factory-twin schemas``: write the contract's JSON Schema files, or check them.

factory-twin schemas --out docs/schemas      (make schemas)
factory-twin schemas --check                 exit 1 when a file is stale
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from api.cli.common import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, fail
from twin.contract import json_schemas


def _schema_files() -> dict[str, str]:
    return {
        f"{channel}.schema.json": json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for channel, schema in json_schemas().items()
    }


def cmd_schemas(args: argparse.Namespace) -> int:
    out = Path(args.out)
    files = _schema_files()
    if args.check:
        stale = [
            name
            for name, text in files.items()
            if not (out / name).is_file() or (out / name).read_text("utf-8") != text
        ]
        if stale:
            fail(f"out of date in {out}: {', '.join(stale)}; run: make schemas", EXIT_RUNTIME)
        print(f"{len(files)} schema files in {out} are current")
        return EXIT_OK
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, "utf-8")
    except OSError as exc:
        fail(f"--out {out}: cannot write the schema files: {exc.strerror or exc}", EXIT_USAGE)
    print(f"wrote {len(files)} schema files to {out}")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    schemas = commands.add_parser("schemas", help="write the contract's JSON Schema files")
    schemas.add_argument("--out", default="docs/schemas", help="directory (default docs/schemas)")
    schemas.add_argument("--check", action="store_true", help="fail if the files are stale")
    schemas.set_defaults(handler=cmd_schemas)
