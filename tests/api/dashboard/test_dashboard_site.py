"""The dashboard on a site: a real headless Chromium, from the site to a line to a station.

A real ``SiteStack`` runs the example two-line site (embedded broker, both lines
in one realtime environment) behind the API on a free port. The page shows the
site strip with both lines and their moving figures; a click on the second line
shows its stations, polled from ``GET /lines/{id}``, and its counters rising; a
click on one of its stations opens the station, and a setpoint sent through the
form goes to that line's topics, is acknowledged, and the station's process
follows; the second line's alarms, optimizer and what-ifs are its own, from its
``/lines/{id}/...`` paths. Any JavaScript error fails it. The screenshot of the second line's
station goes to ``build/screenshots/dashboard-site.png``.

The browser is launched as in ``test_dashboard.py`` (Debian's ``chromium``
through Playwright); that module is not importable under ``--import-mode=importlib``,
so the few lines of the launch are repeated here. The site runs at 300x: the CNC
cell makes a good part every ~7 simulated minutes, and its first one after its
mills' first changeover, so 60x would take minutes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from helpers import REPO, chromium, get_free_port, serve_in_thread, watched_page

from api.app import create_app
from api.runtime.options import StackOptions
from api.runtime.site import SiteStack
from twin.config.line import LineConfig
from twin.config.site import SiteConfig, load_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "dashboard-site-token-0123456789"
SITE_FILE = REPO / "examples" / "sites" / "two_lines" / "site.yaml"
WAIT_MS = 30_000
COUNT = re.compile(r"^[1-9][\d,]*$")
SCREENSHOT = REPO / "build" / "screenshots" / "dashboard-site.png"


@pytest.fixture(scope="module")
def site_config() -> SiteConfig:
    return load_site(SITE_FILE)


@pytest.fixture(scope="module")
def site_url(site_config: SiteConfig) -> Iterator[str]:
    site = SiteStack(site_config, StackOptions(speed=300, seed=7, mqtt_port=get_free_port()))
    app = create_app(site=site, api_token=TOKEN)
    with serve_in_thread(app) as url:
        yield url
    assert not site.started  # the app's lifespan stopped the site with the server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def ranged(config: LineConfig) -> list[str]:
    """The line's setpoints with a range: what its optimizer may choose."""
    return [
        f"{station.id}.{name}"
        for station in config.stations
        for name in ("speed", "temperature_c")
        if (setpoint := getattr(station.process, name)) is not None and setpoint.min < setpoint.max
    ]


def test_dashboard_drills_down_from_the_site_to_a_line_to_a_station(
    site_url: str, browser: Browser, site_config: SiteConfig
) -> None:
    from playwright.sync_api import expect

    first, second = site_config.line_ids
    first_config, second_config = site_config.line(first), site_config.line(second)
    page, problems = watched_page(browser)
    try:
        page.goto(f"{site_url}/#token={TOKEN}")
        # The token left the address bar and is in use.
        expect(page.get_by_test_id("token-state")).to_contain_text("token set")
        assert "token" not in page.evaluate("location.hash")

        # 1. The site strip: both lines, their figures moving; the first line is shown,
        # live over SSE.
        expect(page.get_by_test_id("site-strip")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("site-name")).to_have_text("Plant A")
        for line_id in (first, second):
            card = page.get_by_test_id(f"site-line-{line_id}")
            expect(card).to_contain_text(site_config.line(line_id).line.name)
            expect(page.get_by_test_id(f"site-line-{line_id}-status")).to_have_text(
                "online", timeout=WAIT_MS
            )
        expect(page.get_by_test_id(f"site-line-{first}")).to_have_class(re.compile("current"))
        expect(page.get_by_test_id("conn-status")).to_have_text("live", timeout=WAIT_MS)
        strip_good = page.get_by_test_id(f"site-line-{first}-good")
        expect(strip_good).to_have_text(COUNT, timeout=WAIT_MS)
        expect(strip_good).not_to_have_text(strip_good.inner_text(), timeout=WAIT_MS)
        expect(page.get_by_test_id(f"site-line-{first}-oee")).to_have_text(
            re.compile(r"^\d+\.\d %$")
        )
        expect(page.get_by_test_id("station-welding")).to_be_visible()

        # 2. The second line: its own stations (polled), its good parts rising, and
        # its own alarms, optimizer and what-ifs, asked for under its path.
        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url))
        page.get_by_test_id(f"site-line-{second}").click()
        assert page.evaluate("location.hash") == f"#line={second}"
        expect(page.get_by_test_id(f"site-line-{second}")).to_have_class(re.compile("current"))
        expect(page.get_by_test_id("line-name")).to_have_text(
            second_config.line.name, timeout=WAIT_MS
        )
        for station in second_config.stations:
            expect(page.get_by_test_id(f"station-{station.id}")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("station-welding")).to_have_count(0)
        expect(page.get_by_test_id("conn-status")).to_contain_text("polled")
        good = page.get_by_test_id("kpi-good")
        expect(good).to_have_text(COUNT, timeout=WAIT_MS)
        expect(good).not_to_have_text(good.inner_text(), timeout=WAIT_MS)
        expect(page.get_by_test_id("alarms")).to_be_visible()
        expect(page.get_by_test_id("recommendation")).to_contain_text(
            f"no optimizer run of line '{second}' has finished yet", timeout=WAIT_MS
        )
        expect(page.get_by_test_id("scenario-list")).to_contain_text("none yet", timeout=WAIT_MS)
        # The optimizer offers the second line's own setpoints, none of the first's.
        choices = page.get_by_test_id("optimize-setpoints").locator('input[name="vars"]')
        expect(choices).to_have_count(len(ranged(second_config)), timeout=WAIT_MS)
        assert [box.get_attribute("value") for box in choices.all()] == ranged(second_config)
        for path in (
            "alarms",
            "economics",
            "optimize/recommendation",
            "optimize/space",
            "scenarios",
        ):
            assert f"{site_url}/lines/{second}/{path}" in asked, (path, asked)
        expect(page.get_by_test_id("site-clock-note")).to_be_visible()

        # 3. A station of the second line: its detail, then a setpoint through the form,
        # sent on that line's topics; the parts it makes next report the new speed.
        page.get_by_test_id("station-milling").click()
        assert page.evaluate("location.hash") == f"#line={second}&station=milling"
        expect(page.get_by_test_id("station-detail")).to_be_visible()
        expect(page.get_by_test_id("detail-name")).to_contain_text("milling")
        expect(page.get_by_test_id("process-speed")).to_have_text("1.00 ×", timeout=WAIT_MS)
        page.get_by_test_id("setpoint-name").select_option("speed")
        page.get_by_test_id("setpoint-value").fill("1.2")
        page.get_by_test_id("setpoint-send").click()
        ack = page.get_by_test_id("setpoint-ack")
        expect(ack).to_contain_text("accepted", timeout=WAIT_MS)
        expect(ack).to_have_attribute("data-accepted", "true")
        expect(page.get_by_test_id("process-speed")).to_have_text("1.20 ×", timeout=WAIT_MS)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        # 4. Back to the first line by its card: live again, the detail closed.
        page.get_by_test_id(f"site-line-{first}").click()
        expect(page.get_by_test_id("conn-status")).to_have_text("live", timeout=WAIT_MS)
        expect(page.get_by_test_id("station-welding")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("station-detail")).to_be_hidden()
        expect(page.get_by_test_id("recommendation")).to_have_text(
            "no recommendation yet: no optimizer run has finished yet", timeout=WAIT_MS
        )
        choices = page.get_by_test_id("optimize-setpoints").locator('input[name="vars"]')
        expect(choices).to_have_count(len(ranged(first_config)), timeout=WAIT_MS)
        assert [box.get_attribute("value") for box in choices.all()] == ranged(first_config)
    finally:
        page.close()
    assert problems == [], problems
