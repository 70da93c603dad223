"""Two controllers with --leader-elect: one reconciles; kill it and the other takes over.

Scenario: ctl_scenarios.leader (the same run against a real cluster in tests/e2e).
"""

from __future__ import annotations

from ctl_scenarios import leader
from ctl_support import SimCluster


async def test_only_the_leader_reconciles_and_the_other_takes_over(
    ctl_cluster: SimCluster,
) -> None:
    await leader.only_the_leader_reconciles_and_the_other_takes_over(ctl_cluster)
