"""Fixtures of the reliability suite (names prefixed `rel_` so they shadow nothing).

`rel_env`: a fresh KubeSim with workload simulation, five nodes in NodeUnits of two label
keys, the grid CRDs, and a TCP proxy in front of it that every component under test talks
through (see rel_support.py). No controller yet.
`rel_lenient_env`: the same with CRDs stripped of CEL rules and string constraints (a cluster
without CEL), so hostile input reaches the controller.
`rel_record`: the scenario's line of the report (hack/chaos collects them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rel_support import RelEnv, ScenarioRecord


@pytest.fixture
async def rel_env(tmp_path: Path) -> AsyncIterator[RelEnv]:
    env = await RelEnv.start(tmp_path)
    try:
        yield env
    finally:
        await env.close()


@pytest.fixture
async def rel_lenient_env(tmp_path: Path) -> AsyncIterator[RelEnv]:
    env = await RelEnv.start(tmp_path, lenient=True)
    try:
        yield env
    finally:
        await env.close()


@pytest.fixture
def rel_record(request: pytest.FixtureRequest) -> ScenarioRecord:
    return ScenarioRecord(scenario=request.node.name.removeprefix("test_"))
