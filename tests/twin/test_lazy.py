"""The heavy libraries' first imports go one thread at a time (twin.lazy): a loader
that the alarm rules or live scoring reach waits while another thread holds them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from models.optimizer.confirmation import _t
from models.registry.cards import library_versions
from models.registry.store import _skops_io
from twin.lazy import HEAVY_IMPORTS
from twin.learning.estimators import _stats

LOADERS: dict[str, Callable[[], Any]] = {
    "scipy.stats (the learnt line)": _stats,
    "skops.io (a model's file)": _skops_io,
    "library versions (a model card)": library_versions,
    "scipy.stats (the optimizer's interval)": lambda: _t(5),
}


@pytest.mark.parametrize("loader", list(LOADERS.values()), ids=list(LOADERS))
def test_a_first_import_waits_while_another_thread_imports(loader: Callable[[], Any]) -> None:
    loader()  # imported already: only the lock can hold the next call up
    done = threading.Event()

    def load() -> None:
        loader()
        done.set()

    with HEAVY_IMPORTS:
        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        # Held here, the loader cannot pass: however long we wait, it is not done.
        assert not done.wait(0.3)
    thread.join(120)
    assert done.is_set()
