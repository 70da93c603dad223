"""Scenario 6: label churn. Nodes move between units, units appear and vanish (nodes
relabelled, unlabelled, added and deleted), while grids are created, edited and deleted, in
two rounds; each round ends with the invariant: one child per (grid, unit), none for a
vanished unit or a deleted grid, status equal to the children."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from rel_invariants import Expectations, SimView, converge, node_units
from rel_support import SCALE, Churn, RelEnv, ScenarioRecord, ops_summary, plant_foreign


@pytest.mark.timeout(300)
async def test_rel_label_churn(rel_env: RelEnv, rel_record: ScenarioRecord) -> None:
    env = rel_env
    await env.start_controller()
    churn = Churn(env, random.Random(66), max_grids=12, max_nodes=9, min_nodes=2)
    for _ in range(6):
        churn.create_grid()
    view = SimView(env.sim)
    exp = Expectations()
    plant_foreign(env, exp)
    units_seen: Counter[str] = Counter()
    for _ in range(2):
        before = {k: node_units(view.objects("nodes"), k) for k in churn.keys}
        await churn.run(seconds=SCALE.churn_seconds, pace=0.08)
        after = {k: node_units(view.objects("nodes"), k) for k in churn.keys}
        for key in churn.keys:
            units_seen["units appeared"] += len(after[key] - before[key])
            units_seen["units vanished"] += len(before[key] - after[key])
        exp.grids = churn.ledger()
        result = await converge(view, exp, deadline=SCALE.converge_deadline, settled=env.settled)
        assert result.verdict.lost == 0
        rel_record.invariant_checks += result.verdict.checks
        rel_record.invariant_passes += 1
        rel_record.reconverge_seconds.append(result.seconds)
    assert churn.ops["relabel node"] + churn.ops["unlabel node"] > 0
    assert all(c.alive() for c in env.controllers)

    rel_record.add_faults(
        [
            ("node label changes", churn.ops["relabel node"] + churn.ops["unlabel node"]),
            ("nodes added / deleted", churn.ops["add node"] + churn.ops["delete node"]),
            *units_seen.items(),
        ]
    )
    rel_record.churn = ops_summary(churn.ops)
    rel_record.write()
