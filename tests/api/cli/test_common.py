"""What the commands share: the running line's topics, under the root ``up`` uses."""

from __future__ import annotations

import pytest

from api.cli.common import line_topics
from twin.config.line import load_config


def test_the_topics_are_under_the_root_up_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config()
    monkeypatch.delenv("FACTORY_TWIN_TOPIC_ROOT", raising=False)
    assert line_topics(config).root == "factory"
    monkeypatch.setenv("FACTORY_TWIN_TOPIC_ROOT", "plant7")
    topics = line_topics(config)
    assert topics.root == "plant7"
    assert topics.ack_for(None).startswith("plant7/")
