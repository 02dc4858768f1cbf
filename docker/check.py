"""Check the Docker deployment without a Docker engine: ``make docker-check``.

Two checks. The compose file is validated by ``docker-compose config --quiet``
with ``docker/.env.example`` loaded, when Debian's ``docker-compose`` is
installed; without it the check is skipped with a message (and fails under
``CI=true``, where it must run). The Grafana files are always checked: the
provisioning YAML parses, the dashboard uses the provisioned datasource, and
every Flux query names only measurements and fields that the history writer
produces (``twin.history.points.SCHEMA``), so a renamed field breaks this check
instead of leaving an empty panel. ``tests/docker/test_compose.py`` imports
the functions below.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DOCKER = Path(__file__).resolve().parent
REPO = DOCKER.parent
COMPOSE_FILE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
GRAFANA = DOCKER / "grafana"
DATASOURCES_FILE = GRAFANA / "provisioning" / "datasources" / "influxdb.yaml"
PROVIDERS_FILE = GRAFANA / "provisioning" / "dashboards" / "dashboards.yaml"
DASHBOARDS = GRAFANA / "dashboards"
COMPOSE_PACKAGE = "docker-compose"  # Debian's package, version 1.29 in bookworm
STATE_MEASUREMENT, STATE_FIELD = "state", "code"

# ``r._field`` or ``r["_field"]`` (and the same for _measurement), then what it
# is compared with. Only ``== "literal"`` can be checked against the schema; any
# other use (=~, !=, contains(...)) is reported, so nothing slips past unchecked.
_REFERENCE = re.compile(r'\br(?:\.(_measurement|_field)\b|\[\s*"(_measurement|_field)"\s*\])')
_EQUALS_LITERAL = re.compile(r'\s*==\s*"([^"\\]*)"')
_COMMENT = re.compile(r"//[^\n]*")


@dataclass
class FluxReferences:
    """The measurements and fields one Flux query selects, and what could not be read."""

    measurements: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    unreadable: list[str] = field(default_factory=list)


def flux_references(query: str) -> FluxReferences:
    found = FluxReferences()
    text = _COMMENT.sub("", query)
    for match in _REFERENCE.finditer(text):
        column = match.group(1) or match.group(2)
        literal = _EQUALS_LITERAL.match(text, match.end())
        if literal is None:
            found.unreadable.append(text[match.start() : match.end() + 30].strip())
        elif column == "_measurement":
            found.measurements.add(literal.group(1))
        else:
            found.fields.add(literal.group(1))
    return found


def schema_errors(query: str, schema: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Why ``query`` may select something the writer does not produce (empty: it cannot)."""
    refs = flux_references(query)
    errors = [
        f"cannot check {text!r}: compare _measurement/_field with == and a string literal"
        for text in refs.unreadable
    ]
    if not refs.measurements:
        errors.append("the query names no measurement (r._measurement == ...)")
    unknown = sorted(refs.measurements - schema.keys())
    errors += [f"measurement {name!r} is not in twin.history.points.SCHEMA" for name in unknown]
    known = sorted(refs.measurements & schema.keys())
    produced = {name for measurement in known for name in schema[measurement]}
    errors += [
        f"field {name!r} is not a field of {' or '.join(repr(m) for m in known)}"
        for name in sorted(refs.fields - produced)
        if known
    ]
    return errors


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def _query_text(query: object) -> str | None:
    if isinstance(query, str):
        return query
    if isinstance(query, dict) and isinstance(query.get("query"), str):
        return str(query["query"])
    return None


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, Flux text) for every panel target and every query variable."""
    for panel in walk_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            where = f"panel {panel.get('title')!r} target {target.get('refId')}"
            yield where, str(target.get("query", ""))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            text = _query_text(variable.get("query"))
            yield f"variable {variable.get('name')!r}", text or ""


def _datasource_uid(datasource: object) -> str | None:
    if isinstance(datasource, dict):
        uid = datasource.get("uid")
        return uid if isinstance(uid, str) else None
    return None


def state_mapping_errors(panel: dict[str, Any], states: tuple[str, ...]) -> list[str]:
    """A panel showing state codes must name every code as twin.contract does."""
    shown: dict[str, str] = {}
    for mapping in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        if mapping.get("type") == "value":
            shown |= {code: entry.get("text") for code, entry in mapping["options"].items()}
    expected = {str(code): name for code, name in enumerate(states)}
    if shown != expected:
        return [f"panel {panel.get('title')!r}: state value mappings {shown} != {expected}"]
    return []


def dashboard_errors(
    dashboard: dict[str, Any],
    schema: Mapping[str, tuple[str, ...]],
    datasource_uid: str,
    states: tuple[str, ...],
) -> list[str]:
    """Everything wrong with a parsed dashboard (empty: nothing)."""
    errors: list[str] = []
    panels = [p for p in walk_panels(dashboard.get("panels", [])) if p.get("type") != "row"]
    if not panels:
        errors.append("the dashboard has no panels")
    for panel in panels:
        title = panel.get("title")
        if not panel.get("targets"):
            errors.append(f"panel {title!r} has no queries")
        if _datasource_uid(panel.get("datasource")) != datasource_uid:
            errors.append(f"panel {title!r} does not use datasource uid {datasource_uid!r}")
        for target in panel.get("targets", []):
            if _datasource_uid(target.get("datasource")) != datasource_uid:
                errors.append(
                    f"panel {title!r} target {target.get('refId')} does not use datasource"
                    f" uid {datasource_uid!r}"
                )
            refs = flux_references(str(target.get("query", "")))
            if refs.measurements == {STATE_MEASUREMENT} and refs.fields == {STATE_FIELD}:
                errors += state_mapping_errors(panel, states)
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query" and (
            _datasource_uid(variable.get("datasource")) != datasource_uid
        ):
            errors.append(f"variable {variable.get('name')!r} does not use {datasource_uid!r}")
    for where, query in dashboard_queries(dashboard):
        errors += [f"{where}: {error}" for error in schema_errors(query, schema)]
    return errors


def load_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text("utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a YAML mapping")
    return loaded


def provisioned_datasource_uid() -> str:
    """The uid of the InfluxDB (Flux) datasource that Grafana provisions."""
    datasources = load_yaml(DATASOURCES_FILE).get("datasources") or []
    flux = [
        source
        for source in datasources
        if source.get("type") == "influxdb"
        and source.get("jsonData", {}).get("version") == "Flux"
        and source.get("uid")
    ]
    if len(flux) != 1:
        raise ValueError(f"{DATASOURCES_FILE}: expected one InfluxDB Flux datasource with a uid")
    return str(flux[0]["uid"])


def provider_paths() -> list[str]:
    """Where in the Grafana container the provisioned dashboard files are read from."""
    providers = load_yaml(PROVIDERS_FILE).get("providers") or []
    paths = [
        str(p.get("options", {}).get("path", "")) for p in providers if p.get("type") == "file"
    ]
    if not paths or not all(paths):
        raise ValueError(f"{PROVIDERS_FILE}: expected file providers with options.path")
    return paths


def check_grafana() -> list[str]:
    """Provisioning files and every dashboard against the history schema."""
    from twin.contract import STATION_STATES
    from twin.history.points import SCHEMA

    try:
        uid = provisioned_datasource_uid()
        provider_paths()
    except (OSError, ValueError, yaml.YAMLError) as error:
        return [str(error)]
    dashboards = sorted(DASHBOARDS.glob("*.json"))
    if not dashboards:
        return [f"no dashboard JSON in {DASHBOARDS}"]
    errors: list[str] = []
    for path in dashboards:
        try:
            dashboard = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as error:
            errors.append(f"{path.name}: {error}")
            continue
        errors += [
            f"{path.name}: {error}"
            for error in dashboard_errors(dashboard, SCHEMA, uid, STATION_STATES)
        ]
    return errors


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose env file; comments and blank lines skipped."""
    values: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def compose_command(binary: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run docker-compose with the env example loaded."""
    help_text = subprocess.run(  # noqa: S603 - our own fixed arguments
        [binary, "--help"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    if "--env-file" in help_text:
        return [binary, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), *args], dict(
            os.environ
        )
    # docker-compose before 1.25 has no --env-file: export the variables instead.
    return [binary, "-f", str(COMPOSE_FILE), *args], {
        **read_env_file(ENV_EXAMPLE),
        **os.environ,
    }


def check_compose(in_ci: bool) -> tuple[str, str]:
    """Run ``docker-compose config --quiet``: (status "ok", "skipped" or "FAILED", message)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        message = (
            f"docker-compose not found, so compose.yaml was not validated: install Debian's"
            f" '{COMPOSE_PACKAGE}' package (apt-get install {COMPOSE_PACKAGE})"
        )
        # CI installs it (.ci/run): there, a missing binary must not pass silently.
        return ("FAILED" if in_ci else "skipped"), message
    command, env = compose_command(binary, "config", "--quiet")
    result = subprocess.run(  # noqa: S603 - our own fixed arguments
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        return "FAILED", f"docker-compose config rejects compose.yaml:\n{result.stderr.strip()}"
    return "ok", "docker-compose config accepts compose.yaml (with .env.example)"


def report(line: str) -> None:
    print(line)  # noqa: T201 - a command-line script


def main() -> int:
    in_ci = os.environ.get("CI", "").lower() == "true"
    compose_status, compose_message = check_compose(in_ci)
    report(f"{compose_status}: {compose_message}")
    grafana_errors = check_grafana()
    for error in grafana_errors:
        report(f"FAILED: grafana: {error}")
    if not grafana_errors:
        report("ok: grafana provisioning and dashboards match twin.history.points.SCHEMA")
    return 0 if compose_status != "FAILED" and not grafana_errors else 1


if __name__ == "__main__":
    sys.exit(main())
