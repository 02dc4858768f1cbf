"""The live dashboard: a static page at ``/`` that reads the API like any client.

The page (``index.html``, ``style.css`` and the ``*.js`` modules in this
package) is hand-written, with no third-party code and no external URL, so it
works offline and behind any proxy. Its script is native ES modules, with no
build step: ``index.html`` loads ``main.js``, which imports the others by
relative path (``./api.js``, ``./format.js``...). It loads ``GET /twin``,
follows ``GET /stream``, polls ``GET /alarms``, ``GET /economics``,
``GET /scenarios`` and ``GET /healthz``, and sends commands with the token the
user types in; the server only hands out the files. With a site it also polls
``GET /site`` and, for a line other than the first, ``GET /lines/{id}``.

Only the listed assets are served (not this package's Python files), each with
its content type, and revalidated on every load: they change with a release,
not with the data. The list is the stylesheet and every ``*.js`` file here, read
at import; a module needs its JavaScript type, or the browser refuses it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent
ASSETS_PATH = "/dashboard"
_JAVASCRIPT = "text/javascript; charset=utf-8"
ASSETS: dict[str, str] = {
    "style.css": "text/css; charset=utf-8",
    **{module.name: _JAVASCRIPT for module in sorted(STATIC_DIR.glob("*.js"))},
}
_NO_CACHE = {"Cache-Control": "no-cache"}


def install(app: FastAPI) -> None:
    """Serve the page at ``/`` and its assets under ``/dashboard/``."""

    @app.get("/", include_in_schema=False)
    def dashboard_page() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_NO_CACHE
        )

    @app.get(f"{ASSETS_PATH}/{{name}}", include_in_schema=False)
    def dashboard_asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(status_code=404, detail=f"no dashboard asset {name!r}")
        return FileResponse(STATIC_DIR / name, media_type=ASSETS[name], headers=_NO_CACHE)


__all__ = ["ASSETS", "ASSETS_PATH", "STATIC_DIR", "install"]
