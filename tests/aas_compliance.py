"""Run the AAS compliance tool (PyPI ``aas-compliance-tool`` 1.0.0) on a file.

Run as a script in a subprocess: ``python tests/aas_compliance.py json FILE`` (or
``aasx FILE``) checks FILE against the official AAS v3.0 JSON schema the tool ships
(``aas_compliance_tool/schemas/aasJSONSchema.json``; an AASX file: each of its AAS
parts against the JSON or XML schema) and deserialises it with the tool's checks,
prints the tool's report and exits 1 unless every step succeeded with no error
logged.

Why not its ``aas-compliance-check`` console script: in 1.0.0 the script cannot
start. Its entry point names ``aas_compliance_tool:main``, which does not exist
(``main`` is in ``aas_compliance_tool.cli``), and ``cli`` imports the checks from
``basyx.aas.compliance_tool``, where they lived before they moved into this
package (basyx-python-sdk issue 354). Even started, its ``schema`` action has no
branch in ``main`` and checks nothing. So this runs the same check functions the
script would call, from the tool's own modules, with the tool's own report.
"""

from __future__ import annotations

import logging
import sys

from aas_compliance_tool import compliance_check_aasx, compliance_check_json
from aas_compliance_tool.state_manager import ComplianceToolStateManager, Status


def check(kind: str, path: str) -> ComplianceToolStateManager:
    manager = ComplianceToolStateManager()
    module = compliance_check_json if kind == "json" else compliance_check_aasx
    module.check_schema(path, manager)
    module.check_deserialization(path, manager)
    return manager


def main(argv: list[str]) -> int:
    kind, path = argv
    if kind not in ("json", "aasx"):
        raise SystemExit(f"usage: aas_compliance.py json|aasx FILE, not {kind!r}")
    manager = check(kind, path)
    sys.stdout.write(manager.format_state_manager(1) + "\n")  # the tool's report
    # The AASX reader logs a defect object and goes on (the tool still calls the step
    # a success), so an error in any step's log fails the check too.
    passed = bool(manager.steps) and all(
        step.status is Status.SUCCESS
        and all(record.levelno < logging.ERROR for record in step.log_list)
        for step in manager.steps
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
