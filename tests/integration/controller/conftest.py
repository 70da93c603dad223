"""Fixtures of the controller-on-kubesim suite (names prefixed `ctl_` to shadow nothing).

`ctl_cluster`: a `SimCluster` (ctl_support.py): a fresh KubeSim with workload simulation,
five nodes in three NodeUnits of label `zone` (zone-0, zone-1, zone-2), the grid CRDs and no
controller yet (each scenario starts its own).
`ctl_lenient_cluster`: the same with CRDs stripped of their CEL rules (a cluster without
CEL), so bad input reaches the controller.

The scenarios themselves live in tests/ctl_scenarios and run against a real cluster too
(tests/e2e); the tests here are one-line calls of them.

`SERVICEGROUP_CTL_API_ONLY=1` runs the suite on kubesim's API-only mode (no pods; the tests
that need running pods skip): quicker while working on the reconcilers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ctl_support import SimCluster, start_sim_cluster

WORKLOADS = os.environ.get("SERVICEGROUP_CTL_API_ONLY") != "1"


@pytest.fixture
async def ctl_cluster(tmp_path: Path) -> AsyncIterator[SimCluster]:
    cluster = await start_sim_cluster(tmp_path, workloads=WORKLOADS)
    try:
        yield cluster
    finally:
        await cluster.stop_all()
        await cluster.sim.stop()


@pytest.fixture
async def ctl_lenient_cluster(tmp_path: Path) -> AsyncIterator[SimCluster]:
    cluster = await start_sim_cluster(tmp_path, workloads=WORKLOADS, lenient=True)
    try:
        yield cluster
    finally:
        await cluster.stop_all()
        await cluster.sim.stop()
