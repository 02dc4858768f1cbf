"""GET /aas and GET /aas.aasx over a twin and a learner fed by the plant through the
ingest (``feeding.feed_learner``, the live stack's wiring minus the broker): the
answers pass the AAS compliance tool and the BaSyx SDK's strict reader, and their
figures are the twin's own."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from basyx.aas import model
from basyx.aas.adapter import aasx
from basyx.aas.adapter.json import read_aas_json_file
from fastapi.testclient import TestClient
from feeding import feed_learner

from api.app import create_app
from twin.config.line import LineConfig, load_config

REPO = Path(__file__).resolve().parents[3]
CHECKER = REPO / "tests" / "aas_compliance.py"
TEMPLATES = {"line1": None, "cnc-cell": REPO / "examples" / "lines" / "cnc_cell.yaml"}
OPERATIONAL = "urn:factory-twin:concept:1:0:OperationalData"
LEARNED = "urn:factory-twin:concept:1:0:LearnedParameters"
TECHNICAL = "https://admin-shell.io/ZVEI/TechnicalData/Submodel/1/2"


@pytest.fixture(scope="module", params=list(TEMPLATES))
def served(request: pytest.FixtureRequest) -> Iterator[tuple[TestClient, LineConfig]]:
    config = load_config(TEMPLATES[request.param])
    twin, learner = feed_learner(config, 6.0, seed=11)
    with TestClient(create_app(twin_state=twin, config=config, learner=learner)) as client:
        yield client, config


def _store(body: bytes) -> model.DictIdentifiableStore[model.Identifiable]:
    return read_aas_json_file(io.StringIO(body.decode()), failsafe=False)


def _by_semantic(store: object, semantic: str) -> list[model.Submodel]:
    return [
        item
        for item in store  # type: ignore[attr-defined]
        if isinstance(item, model.Submodel)
        and item.semantic_id is not None
        and item.semantic_id.key[0].value == semantic
    ]


def _compliance(kind: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), kind, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_json_and_the_aasx_pass_the_compliance_tool(
    served: tuple[TestClient, LineConfig], tmp_path: Path
) -> None:
    client, _ = served
    json_file = tmp_path / "line.json"
    json_file.write_bytes(client.get("/aas").content)
    package = tmp_path / "line.aasx"
    package.write_bytes(client.get("/aas.aasx").content)
    for kind, path in (("json", json_file), ("aasx", package)):
        result = _compliance(kind, path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Validate file against official json schema" in result.stdout


def test_the_compliance_check_fails_a_broken_file(tmp_path: Path) -> None:
    """The check can fail: a valueType the AAS schema does not know."""
    config = load_config()
    twin, learner = feed_learner(config, 0.5, seed=11)
    with TestClient(create_app(twin_state=twin, config=config, learner=learner)) as client:
        body = client.get("/aas").text
    broken = tmp_path / "broken.json"
    broken.write_text(body.replace('"xs:double"', '"xs:real"', 1))
    result = _compliance("json", broken)
    assert result.returncode == 1, result.stdout
    assert "FAILED" in result.stdout


def test_the_aas_is_the_twins_line(served: tuple[TestClient, LineConfig]) -> None:
    client, config = served
    response = client.get("/aas")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    kpis = client.get("/kpis").json()
    store = _store(response.content)
    shells = [item for item in store if isinstance(item, model.AssetAdministrationShell)]
    assert len(shells) == 1 + len(config.stations)
    operational = {sub.id: sub for sub in _by_semantic(store, OPERATIONAL)}  # one per shell
    assert len(operational) == len(shells)
    line = next(s for s in operational.values() if s.id.endswith(f":{config.line.id}"))
    assert kpis["oee"] > 0
    assert line.get_referable("OEE").value == pytest.approx(kpis["oee"])
    assert line.get_referable("Availability").value == pytest.approx(kpis["availability"])
    assert line.get_referable("Good").value == kpis["good"]
    stations = {station["id"]: station for station in client.get("/stations").json()}
    assert len(stations) == len(config.stations)
    for station in config.stations:
        data = next(s for s in operational.values() if s.id.endswith(f":{station.id}"))
        assert data.get_referable("State").value == stations[station.id]["state"]
        technical = next(
            s for s in _by_semantic(store, TECHNICAL) if s.id.endswith(f":{station.id}")
        )
        setpoints = technical.get_referable("TechnicalProperties").get_referable("Setpoints")
        speed = setpoints.get_referable("speed").get_referable("Range")
        assert (speed.min, speed.max) == (station.process.speed.min, station.process.speed.max)
    # The learner has seen six hours: the learnt parameters are there, as /model has them.
    learned = _by_semantic(store, LEARNED)
    assert len(learned) == 1
    model_parameters = client.get("/model").json()["parameters"]
    shown = [
        element
        for group in learned[0].submodel_element
        for element in group.value  # type: ignore[attr-defined]
        if isinstance(element, model.SubmodelElementCollection)
    ]
    assert len(shown) == len(model_parameters)
    # Under the line's own path too, and a 404 for a line the app does not serve.
    assert client.get(f"/lines/{config.line.id}/aas").status_code == 200
    assert client.get("/lines/nowhere/aas").status_code == 404


def test_the_aasx_package_holds_the_same_shells(served: tuple[TestClient, LineConfig]) -> None:
    client, config = served
    response = client.get("/aas.aasx")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/asset-administration-shell-package+xml"
    disposition = response.headers["content-disposition"]
    assert disposition == f'attachment; filename="{config.line.id}.aasx"'
    store: model.DictIdentifiableStore[model.Identifiable] = model.DictIdentifiableStore()
    with aasx.AASXReader(io.BytesIO(response.content), failsafe=False) as reader:
        reader.read_into(store, aasx.DictSupplementaryFileContainer())
    from_json = _store(client.get("/aas").content)
    assert {str(item.id) for item in store} == {str(item.id) for item in from_json}


def test_the_learned_parameters_appear_once_something_is_learnt() -> None:
    config = load_config()
    for hours, expected in ((0.02, 0), (4.0, 1)):
        twin, learner = feed_learner(config, hours, seed=11)
        app = create_app(twin_state=twin, config=config, learner=learner)
        with TestClient(app) as client:
            store = _store(client.get("/aas").content)
        assert len(_by_semantic(store, LEARNED)) == expected, hours


def test_a_line_without_a_file_or_learner_still_has_its_shells() -> None:
    config = load_config()
    twin, _ = feed_learner(config, 1.0, seed=11)
    with TestClient(create_app(twin_state=twin)) as client:
        store = _store(client.get("/aas").content)
    shells = [item for item in store if isinstance(item, model.AssetAdministrationShell)]
    assert len(shells) == 1 + len(config.stations)
    assert _by_semantic(store, LEARNED) == []


def test_the_api_starts_without_the_aas_sdk() -> None:
    """basyx is imported by the first /aas request, not at start-up (and neither scipy
    nor sklearn)."""
    code = (
        "import sys\n"
        "from api.app import create_app\n"
        "from twin.state.line import TwinState\n"
        "create_app(twin_state=TwinState('s', 'a', 'l'))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'basyx', 'scipy', 'sklearn'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
