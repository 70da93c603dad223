"""Zero writes at rest: after convergence, a resync and a restart send no write at all.

Scenarios: ctl_scenarios.at_rest (the same run against a real cluster in tests/e2e).
"""

from __future__ import annotations

from ctl_scenarios import at_rest
from ctl_support import SimCluster


async def test_zero_writes_after_convergence_resync_and_restart(ctl_cluster: SimCluster) -> None:
    await at_rest.zero_writes_after_convergence_resync_and_restart(ctl_cluster)


async def test_status_carries_observed_generation_and_events_are_not_repeated(
    ctl_cluster: SimCluster,
) -> None:
    await at_rest.status_carries_observed_generation_and_events_are_not_repeated(ctl_cluster)


async def test_grid_metrics(ctl_cluster: SimCluster) -> None:
    await at_rest.grid_metrics(ctl_cluster)


async def test_only_watched_namespaces_are_reconciled(ctl_cluster: SimCluster) -> None:
    await at_rest.only_watched_namespaces_are_reconciled(ctl_cluster)
