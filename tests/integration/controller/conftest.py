"""Fixtures of the controller-on-kubesim suite (names prefixed `ctl_` to shadow nothing).

`ctl_env`: a fresh KubeSim with workload simulation, five nodes in three NodeUnits of label
`zone` (zone-0, zone-1, zone-2), the grid CRDs and no controller yet.
`ctl_lenient_env`: the same with CRDs stripped of their CEL rules (a cluster without CEL),
so bad input reaches the controller.
`ctl_controller`: one controller running in-process against `ctl_env`.

`SERVICEGROUP_CTL_API_ONLY=1` runs the suite on kubesim's API-only mode (no pods; the tests
that need running pods skip): quicker while working on the reconcilers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ctl_support import Env, RunningController, start_env

WORKLOADS = os.environ.get("SERVICEGROUP_CTL_API_ONLY") != "1"


@pytest.fixture
async def ctl_env(tmp_path: Path) -> AsyncIterator[Env]:
    env = await start_env(tmp_path, workloads=WORKLOADS)
    try:
        yield env
    finally:
        await env.stop_all()
        await env.sim.stop()


@pytest.fixture
async def ctl_lenient_env(tmp_path: Path) -> AsyncIterator[Env]:
    env = await start_env(tmp_path, workloads=WORKLOADS, lenient=True)
    try:
        yield env
    finally:
        await env.stop_all()
        await env.sim.stop()


@pytest.fixture
async def ctl_controller(ctl_env: Env) -> RunningController:
    return await ctl_env.start_controller()
