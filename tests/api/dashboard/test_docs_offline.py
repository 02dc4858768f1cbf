"""Offline: ``/``, ``/docs`` and ``/redoc`` work with no request leaving the machine.

A real headless Chromium (Debian's, through Playwright) opens each page of a live
stack with every request to anything but the loopback blocked, as on a plant
network without internet. Each page must render (the dashboard goes live,
Swagger UI lists every operation of ``/openapi.json``, Redoc shows every one)
with no request blocked, none failed, and no console or page error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import (
    EXPECTED_FAILED_LOADS,
    chromium,
    get_free_port,
    serve_in_thread,
    watched_page,
)

from api import docs_ui
from api.app import create_app
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import load_config
from twin.state.line import TwinState

if TYPE_CHECKING:
    from playwright.sync_api import Browser

WAIT_MS = 60_000
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in LOOPBACK


# -- the files, without a browser ----------------------------------------------------------
def test_docs_assets_are_the_vendored_files_with_their_licences() -> None:
    client = TestClient(create_app(twin_state=TwinState("plant-a", "fabrication", "line1")))
    manifest = docs_ui.vendored()
    assert set(manifest) == {"swagger-ui-dist", "redoc"}
    for package, info in manifest.items():
        files: dict[str, str] = info["files"]  # type: ignore[assignment]
        assert "LICENSE" in files, package
        for name, digest in files.items():
            path = docs_ui.VENDOR / package / name
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
            served = client.get(f"{docs_ui.ASSETS_PATH}/{package}/{name}")
            assert served.status_code == 200, name
            assert served.content == path.read_bytes()
    # Only what the manifest lists: no path outside it, not this package's code.
    for path in ("swagger-ui-dist/../__init__.py", "redoc/versions.json", "nope/LICENSE"):
        assert client.get(f"{docs_ui.ASSETS_PATH}/{path}").status_code == 404
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "http://" not in html and "https://" not in html, page  # noqa: PT018
    assert "fonts.googleapis" not in client.get("/redoc").text


# -- a real browser, offline -------------------------------------------------------------------
@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    stack = Stack(
        load_config(),
        StackOptions(speed=60, seed=7, mqtt_port=get_free_port(), scoring_period_s=0),
    )
    with serve_in_thread(create_app(stack=stack)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class Offline:
    """A watched page on which every request off the machine is blocked and noted."""

    def __init__(self, browser: Browser) -> None:
        self.page, self.problems = watched_page(browser)
        self.blocked: list[str] = []
        self.failed: list[str] = []
        self.page.route(lambda url: not local(url), self._block)
        # Main-frame navigations begun so far, and how many there had been when
        # each request was sent: a poll the page cancels as it leaves is not a failure.
        self.navigations = 0
        self.sent_at: dict[int, int] = {}
        self.page.on("request", self._request)
        self.page.on("requestfailed", self._request_failed)
        self.page.on("response", self._response)

    def _request(self, request: Any) -> None:
        if request.is_navigation_request() and request.frame == self.page.main_frame:
            self.navigations += 1  # the page is leaving its document from now
        self.sent_at[id(request)] = self.navigations

    def _block(self, route: Any) -> None:
        self.blocked.append(route.request.url)
        route.abort()

    def _request_failed(self, request: Any) -> None:
        # An SSE stream the page closes as it navigates away is not a failure, nor
        # is a poll in flight when the page went to another document (Chromium
        # aborts it: on a busy machine one often is).
        left = self.navigations > self.sent_at.get(id(request), self.navigations)
        if request.url.endswith("/stream") or (left and "ERR_ABORTED" in str(request.failure)):
            return
        self.failed.append(f"{request.url}: {request.failure}")

    def _response(self, response: Any) -> None:
        if response.status >= 400 and not any(
            path in response.url for path in EXPECTED_FAILED_LOADS
        ):
            self.failed.append(f"{response.url}: HTTP {response.status}")

    def check(self) -> None:
        assert self.blocked == [], self.blocked
        assert self.failed == [], self.failed
        assert self.problems == [], self.problems


def operations(url: str) -> list[str]:
    paths = httpx.get(f"{url}/openapi.json", timeout=10).json()["paths"]
    return [
        f"{method.upper()} {path}"
        for path, methods in paths.items()
        for method in methods
        if method in ("get", "post", "put", "patch", "delete")
    ]


@pytest.mark.integration
@pytest.mark.slow
def test_dashboard_docs_and_redoc_render_with_every_outside_request_blocked(
    live_url: str, browser: Browser
) -> None:
    from playwright.sync_api import expect

    expected = operations(live_url)
    assert len(expected) > 20

    offline = Offline(browser)
    page = offline.page
    try:
        # The dashboard: live from the line.
        page.goto(f"{live_url}/")
        expect(page.get_by_test_id("conn-status")).to_have_text("live", timeout=WAIT_MS)
        expect(page.get_by_test_id("line-status")).to_have_text("line: online", timeout=WAIT_MS)

        # Swagger UI: every operation of the schema in its list.
        page.goto(f"{live_url}/docs")
        blocks = page.locator(".opblock")
        expect(blocks.first).to_be_visible(timeout=WAIT_MS)
        expect(blocks).to_have_count(len(expected), timeout=WAIT_MS)
        listed = {
            f"{block.locator('.opblock-summary-method').inner_text().strip()} "
            f"{block.locator('.opblock-summary-path').get_attribute('data-path')}"
            for block in blocks.all()
        }
        assert listed == set(expected)
        # Its parts work offline too: an operation opens.
        page.locator(".opblock-summary-path[data-path='/healthz']").first.click()
        expect(page.locator(".opblock.is-open")).to_have_count(1, timeout=WAIT_MS)

        # Redoc: the API's title and every operation.
        page.goto(f"{live_url}/redoc")
        expect(page.locator("h1").first).to_contain_text("factory-twin", timeout=WAIT_MS)
        sections = page.locator("[data-section-id^='operation/']")
        expect(sections).to_have_count(len(expected), timeout=WAIT_MS)
        expect(page.locator("h2", has_text="Health and message counters")).to_be_visible()
    finally:
        page.close()
    offline.check()
