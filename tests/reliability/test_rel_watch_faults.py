"""Scenario 1: watch streams closed every few seconds, watch history expired (410) repeatedly,
while grids are created, edited and deleted and nodes change units. Nothing is lost."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from rel_invariants import Expectations, SimView, converge
from rel_support import (
    SCALE,
    Churn,
    RelEnv,
    ScenarioRecord,
    ops_summary,
    plant_foreign,
    watch_chaos,
)


def relists(env: RelEnv) -> float:
    total = 0.0
    for controller in env.controllers:
        for metric in controller.metrics.registry.collect():
            if metric.name == "servicegroup_informer_relists":
                total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


@pytest.mark.timeout(240)
async def test_rel_watch_faults(rel_env: RelEnv, rel_record: ScenarioRecord) -> None:
    env = rel_env
    await env.start_controller()
    churn = Churn(env, random.Random(11), max_grids=8)
    for _ in range(5):
        churn.create_grid()
    view = SimView(env.sim)
    exp = Expectations(grids=churn.ledger())
    plant_foreign(env, exp)
    first = await converge(view, exp, deadline=SCALE.converge_deadline, settled=env.settled)
    rel_record.reconverge_seconds.append(first.seconds)
    before = relists(env)

    faults: Counter[str] = Counter()
    chaos = env.spawn(
        watch_chaos(env.sim, period=SCALE.watch_fault_period, counts=faults), name="watch-chaos"
    )
    await churn.run(seconds=SCALE.churn_seconds)
    await env.cancel(chaos)
    # The last blow lands after the last change: the caches must recover without help.
    env.sim.store.expire_history()
    faults["history expired (410)"] += 1
    faults["watch streams closed"] += env.sim.store.close_all_watches()

    exp.grids = churn.ledger()
    result = await converge(view, exp, deadline=SCALE.converge_deadline, settled=env.settled)
    assert result.verdict.lost == 0
    assert relists(env) > before, "no informer relisted: the 410s never reached the controller"
    assert all(c.alive() for c in env.controllers)

    rel_record.add_faults(faults.items())
    rel_record.churn = ops_summary(churn.ops)
    rel_record.invariant_checks += first.verdict.checks + result.verdict.checks
    rel_record.invariant_passes += 2
    rel_record.reconverge_seconds.append(result.seconds)
    rel_record.write()
