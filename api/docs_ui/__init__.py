"""The API's own documentation pages, served with no request leaving the machine.

FastAPI's ``/docs`` (Swagger UI) and ``/redoc`` pages load their scripts and
styles from a CDN by default, and Redoc its fonts from Google: on a plant network
without internet both pages stay blank. Here the same pages load everything from
this package: ``vendor/`` holds the files of the npm packages ``swagger-ui-dist``
and ``redoc`` with their licences, and ``vendor/versions.json`` their versions
and checksums (``scripts/vendor_docs_ui.py`` fetches and updates them; see
docs/api.md). Redoc uses the system's fonts, and Swagger UI's online validator
badge is off.

Only the files listed in ``versions.json`` are served, under
``/docs/assets/{package}/{file}``, revalidated on every load (they change with a
release).
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

VENDOR = Path(__file__).resolve().parent / "vendor"
ASSETS_PATH = "/docs/assets"
_NO_CACHE = {"Cache-Control": "no-cache"}
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}


def vendored() -> dict[str, dict[str, object]]:
    """``versions.json``: each package's version, integrity and files with SHA-256."""
    found: dict[str, dict[str, object]] = json.loads((VENDOR / "versions.json").read_text("utf-8"))
    return found


def _content_type(name: str) -> str:
    return _TYPES.get(Path(name).suffix, "text/plain; charset=utf-8")


def install(app: FastAPI) -> None:
    """``/docs``, its OAuth2 redirect, ``/redoc`` and their assets. The app must be
    made with ``docs_url=None, redoc_url=None`` (FastAPI's own pages are replaced)."""
    files = {
        package: set(info["files"])  # type: ignore[call-overload]
        for package, info in vendored().items()
    }
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    def root(request: Request) -> str:
        """The prefix a proxy mounts the app under, as FastAPI's own pages use it."""
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        assets = f"{base}{ASSETS_PATH}/swagger-ui-dist"
        return get_swagger_ui_html(
            openapi_url=base + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=base + oauth2_redirect,
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            # No badge from the online validator: it would be a request off the machine.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(
            openapi_url=base + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{base}{ASSETS_PATH}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{base}{ASSETS_PATH}/swagger-ui-dist/favicon-32x32.png",
            with_google_fonts=False,  # system fonts: no request to Google
        )

    @app.get(f"{ASSETS_PATH}/{{package}}/{{name}}", include_in_schema=False)
    def docs_asset(package: str, name: str) -> FileResponse:
        if name not in files.get(package, ()):
            raise HTTPException(status_code=404, detail=f"no docs asset {package}/{name}")
        return FileResponse(
            VENDOR / package / name, media_type=_content_type(name), headers=_NO_CACHE
        )


__all__ = ["ASSETS_PATH", "VENDOR", "install", "vendored"]
