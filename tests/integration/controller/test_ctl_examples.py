"""The upstream documentation's examples, end to end on kubesim with workload simulation.

Scenarios: ctl_scenarios.examples (the same run against a real cluster in tests/e2e).
"""

from __future__ import annotations

from ctl_scenarios import examples
from ctl_support import SimCluster


async def test_stateless_example(ctl_cluster: SimCluster) -> None:
    await examples.stateless_example(ctl_cluster)


async def test_stateful_example(ctl_cluster: SimCluster) -> None:
    await examples.stateful_example(ctl_cluster)


async def test_canary_example(ctl_cluster: SimCluster) -> None:
    await examples.canary_example(ctl_cluster)
