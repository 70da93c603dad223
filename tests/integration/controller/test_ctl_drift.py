"""Drift, template edits and garbage collection (SPEC A2, B3), on kubesim.

Scenarios: ctl_scenarios.drift (the same run against a real cluster in tests/e2e).
"""

from __future__ import annotations

from ctl_scenarios import drift
from ctl_support import SimCluster


async def test_hand_edits_of_our_fields_are_reverted_others_survive(
    ctl_cluster: SimCluster,
) -> None:
    await drift.hand_edits_of_our_fields_are_reverted_others_survive(ctl_cluster)


async def test_a_child_deleted_by_hand_is_created_again(ctl_cluster: SimCluster) -> None:
    await drift.a_child_deleted_by_hand_is_created_again(ctl_cluster)


async def test_template_edit_writes_only_to_units_using_it(ctl_cluster: SimCluster) -> None:
    await drift.template_edit_writes_only_to_units_using_it(ctl_cluster)


async def test_deleting_a_grid_deletes_its_children(ctl_cluster: SimCluster) -> None:
    await drift.deleting_a_grid_deletes_its_children(ctl_cluster)
