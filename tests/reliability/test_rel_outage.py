"""Scenario 3: the API server unreachable (connections refused and every open one cut) for a
while - 4 s in CI, 30 s under hack/chaos - while grids and nodes keep changing; then back.
The controller must neither crash nor lose anything, and catch up on what it missed."""

from __future__ import annotations

import random

import pytest
from rel_invariants import Expectations, SimView, converge
from rel_support import SCALE, Churn, RelEnv, ScenarioRecord, ops_summary, plant_foreign


@pytest.mark.timeout(300)
async def test_rel_outage(rel_env: RelEnv, rel_record: ScenarioRecord) -> None:
    env = rel_env
    controller = await env.start_controller()
    churn = Churn(env, random.Random(33), max_grids=10)
    for _ in range(6):
        churn.create_grid()
    view = SimView(env.sim)
    exp = Expectations(grids=churn.ledger())
    plant_foreign(env, exp)
    first = await converge(view, exp, deadline=SCALE.converge_deadline, settled=env.settled)

    async with env.proxy.outage():
        # Everything the controller misses: it must find out once the server is back.
        await churn.run(seconds=SCALE.outage_seconds, pace=SCALE.outage_seconds / 12)
        assert controller.alive()

    exp.grids = churn.ledger()
    result = await converge(view, exp, deadline=SCALE.converge_deadline, settled=env.settled)
    assert result.verdict.lost == 0
    assert controller.alive()

    rel_record.add_faults(
        [(f"API server unreachable ({SCALE.outage_seconds:g} s)", env.proxy.cuts)]
    )
    rel_record.churn = ops_summary(churn.ops)
    rel_record.invariant_checks += first.verdict.checks + result.verdict.checks
    rel_record.invariant_passes += 2
    rel_record.reconverge_seconds.append(result.seconds)
    rel_record.write()
