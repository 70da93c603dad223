"""Fixtures of the wrapper integration tests: a kubesim with three NodeUnits.

Units (node label `zone`): zone-1 = edge-1a, edge-1b; zone-2 = edge-2a, edge-2b;
zone-3 = edge-3a. Everything talks to kubesim over HTTP on 127.0.0.1, except the test's own
setup writes, which use kubesim's in-process client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from wrap_support import UNITS

from servicegroup.kubesim.app import KubeSim, NodeSpec


@pytest.fixture
async def sim() -> AsyncIterator[KubeSim]:
    kubesim = KubeSim(
        nodes=[NodeSpec(name, {"zone": zone}) for name, zone in UNITS.items()],
        bookmark_interval=0.3,
    )
    await kubesim.start()
    try:
        yield kubesim
    finally:
        await kubesim.stop()
