"""NodeUnits appearing and vanishing with node labels (SPEC A2, B9), on kubesim.

Scenarios: ctl_scenarios.nodeunits (the same run against a real cluster in tests/e2e).
"""

from __future__ import annotations

from ctl_scenarios import nodeunits
from ctl_support import SimCluster


async def test_new_unit_gets_children_and_vanished_units_lose_them(ctl_cluster: SimCluster) -> None:
    await nodeunits.new_unit_gets_children_and_vanished_units_lose_them(ctl_cluster)


async def test_grace_period_keeps_a_vanished_units_children_for_a_while(
    ctl_cluster: SimCluster,
) -> None:
    await nodeunits.grace_period_keeps_a_vanished_units_children_for_a_while(ctl_cluster)


async def test_a_unit_returning_within_the_grace_period_keeps_its_children(
    ctl_cluster: SimCluster,
) -> None:
    await nodeunits.a_unit_returning_within_the_grace_period_keeps_its_children(ctl_cluster)
