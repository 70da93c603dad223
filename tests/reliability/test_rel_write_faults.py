"""Scenario 2: 10% of writes fail (500, 429 with Retry-After, 409) and latency spikes of
seconds hit every request, while grids are created, edited and deleted and nodes change units.
Once the faults stop, the world converges with nothing lost and no stale failure condition."""

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
    latency_spikes,
    ops_summary,
    plant_foreign,
    write_faults,
)


def injected(env: RelEnv) -> Counter[str]:
    """rest_client_requests_total by code, as the controllers counted them."""
    out: Counter[str] = Counter()
    for controller in env.controllers:
        for metric in controller.metrics.registry.collect():
            if metric.name != "rest_client_requests":
                continue
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    out[sample.labels["code"]] += int(sample.value)
    return out


@pytest.mark.timeout(240)
async def test_rel_write_faults(rel_env: RelEnv, rel_record: ScenarioRecord) -> None:
    env = rel_env
    await env.start_controller()
    churn = Churn(env, random.Random(22), max_grids=10)
    view = SimView(env.sim)
    exp = Expectations()
    plant_foreign(env, exp)

    faults: Counter[str] = Counter()
    write_faults(env.sim, fraction=0.1, counts=faults)
    spikes = env.spawn(
        latency_spikes(env.sim, seconds=1.5, every=2.0, counts=faults), name="latency-spikes"
    )
    for _ in range(4):
        churn.create_grid()
    await churn.run(seconds=SCALE.churn_seconds * 1.5)
    await env.cancel(spikes)
    env.sim.faults.clear()

    codes = injected(env)
    for code in ("500", "429", "409"):
        faults[f"writes failed with {code}"] = int(codes.get(code, 0))
    assert codes.get("500", 0) + codes.get("429", 0) + codes.get("409", 0) > 0, codes

    exp.grids = churn.ledger()
    result = await converge(view, exp, deadline=SCALE.converge_deadline, settled=env.settled)
    assert result.verdict.lost == 0
    assert all(c.alive() for c in env.controllers)

    rel_record.add_faults(faults.items())
    rel_record.churn = ops_summary(churn.ops)
    rel_record.invariant_checks += result.verdict.checks
    rel_record.invariant_passes += 1
    rel_record.reconverge_seconds.append(result.seconds)
    rel_record.write()
