"""Fixtures every test gets: no leftover asyncio tasks, a fresh metrics registry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

from servicegroup.clock import FakeClock
from servicegroup.metrics import Metrics


@pytest.fixture(autouse=True)
async def _no_leftover_tasks() -> AsyncIterator[None]:
    """Fail any test that leaves asyncio tasks running on its loop."""
    before = set(asyncio.all_tasks())
    yield
    # Give cancelled tasks a few iterations to unwind before judging.
    for _ in range(20):
        leftover = [
            t
            for t in asyncio.all_tasks() - before
            if t is not asyncio.current_task() and not t.done()
        ]
        if not leftover:
            return
        await asyncio.sleep(0.01)
    for task in leftover:
        task.cancel()
    names = sorted(t.get_name() for t in leftover)
    pytest.fail(f"test left {len(leftover)} asyncio task(s) running: {names}")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo any logging configuration a test made (its stream may be closed after the test)."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def metrics() -> Metrics:
    """A fresh registry and collectors per test."""
    return Metrics()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
