"""Both stacks keep the one ``Runtime`` protocol the app and the CLI hold them by.

A line's stack is its own only line and the line the single-line paths serve; a
site's stack lists its lines in the order of the site file, one stack each, and
serves the first. Neither needs to have started to say so, and stopping one that
never started does nothing (the CLI stops whatever part of a start ran).
"""

from __future__ import annotations

from api.runtime.line import Stack
from api.runtime.options import StackOptions
from api.runtime.protocol import Runtime
from api.runtime.site import SiteStack
from twin.config.line import load_config
from twin.config.site import parse_site

SITE = {
    "site": {"id": "works"},
    "lines": [
        {"id": "west", "config": "default"},
        {"id": "east", "config": "default", "area": "hall-b"},
    ],
}


def test_a_line_stack_is_its_own_only_line() -> None:
    config = load_config()
    runtime: Runtime = Stack(config, StackOptions())
    assert dict(runtime.lines) == {config.line.id: runtime}
    assert runtime.first is runtime


def test_a_site_stack_lists_its_lines_in_file_order_and_serves_the_first() -> None:
    site = parse_site(SITE)
    runtime: Runtime = SiteStack(site, StackOptions(seed=4))
    assert list(runtime.lines) == ["west", "east"]
    west, east = runtime.lines["west"], runtime.lines["east"]
    assert runtime.first is west
    assert west is not east
    assert (west.config.line.id, east.config.line.id) == ("west", "east")
    assert east.config.line.area == "hall-b"
    # Each line its own seed, its own ingest client (derived from the site's).
    assert west.options.seed != east.options.seed


def test_stopping_a_runtime_that_never_started_does_nothing() -> None:
    runtimes: list[Runtime] = [
        Stack(load_config(), StackOptions()),
        SiteStack(parse_site(SITE), StackOptions()),
    ]
    for runtime in runtimes:
        runtime.stop()
        assert not runtime.started
        assert runtime.backfill_status() is None
        assert runtime.address is None
