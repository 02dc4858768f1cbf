"""The dashboard's script is native ES modules: each one the page imports is served.

A browser refuses a module script served with a type other than JavaScript, and a
module importing from outside ``/dashboard/`` would need a network the plant may not
have. This walks the imports from the page's ``<script type="module">`` as a browser
does, without one: every module it reaches must answer 200 as JavaScript, import
only by a relative path that stays under ``/dashboard/``, and name no external URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.dashboard import STATIC_DIR
from twin.state.line import TwinState

BASE = "http://127.0.0.1"
# A static import or re-export: `import "x"`, `import ... from "x"`, `export ... from "x"`.
SPECIFIER = re.compile(
    r"""^\s*(?:import\s*|(?:import|export)\b[^;"'`]*?\bfrom\s*)["']([^"']+)["']""", re.M
)
ENTRY = re.compile(r"""<script\b[^>]*\btype="module"[^>]*\bsrc="([^"]+)"[^>]*>""")
# The SVG namespace is a name in the code, never fetched.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def specifiers(source: str) -> list[str]:
    """What a module's static imports and re-exports name, in order."""
    return SPECIFIER.findall(source)


def test_the_import_reader_finds_every_form_of_static_import() -> None:
    source = "\n".join(
        [
            'import { a, b } from "./one.js";',
            "import {",
            "  c,",
            "  d,",
            "} from './two.js';",
            'import * as all from "./three.js";',
            'import "./four.js";',
            'export { e } from "./five.js";',
            'export const word = "./not-an-import.js";',
            'const text = "import x from ./neither.js";',
        ]
    )
    assert specifiers(source) == ["./one.js", "./two.js", "./three.js", "./four.js", "./five.js"]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(twin_state=TwinState("plant-a", "fabrication", "line1"))) as test:
        yield test


def test_every_module_the_page_imports_is_served_as_javascript(client: TestClient) -> None:
    entries = ENTRY.findall(client.get("/").text)
    assert entries == ["/dashboard/main.js"]
    imports: dict[str, list[str]] = {}
    waiting = list(entries)
    while waiting:
        path = waiting.pop()
        if path in imports:
            continue
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/javascript"), (
            path,
            response.headers["content-type"],
        )
        source = response.text
        # A dynamic import would escape this walk; the page has none.
        assert "import(" not in source, path
        external = re.findall(r"https?://[^\s\"'`)]+", source.replace(SVG_NAMESPACE, ""))
        assert external == [], f"{path} references {external}"
        imports[path] = specifiers(source)
        for name in imports[path]:
            assert name.startswith("./"), f"{path} imports {name!r}: not a relative path"
            target = urlsplit(urljoin(f"{BASE}{path}", name))
            assert (target.scheme, target.netloc) == ("http", "127.0.0.1"), (path, name)
            assert target.path.startswith("/dashboard/"), f"{path} imports {name!r}"
            assert (target.query, target.fragment) == ("", ""), (path, name)
            waiting.append(target.path)
    # The walk reached every module of the package, and so the page uses each one.
    assert set(imports) == {f"/dashboard/{module.name}" for module in STATIC_DIR.glob("*.js")}
    assert len(imports) > 1
    assert all(imports[path] for path in entries), "the entry point imports nothing"
