"""Scenario 4: the controller (a real `servicegroup controller` process) is SIGKILLed in the
middle of converging 50 grids, then started again. The new process must finish the job from
what the API server shows: every child exactly once, no duplicate, no leftover, no loss."""

from __future__ import annotations

import random
import signal

import pytest
from rel_invariants import Expectations, Index, SimView, converge
from rel_support import SCALE, Churn, RelEnv, ScenarioRecord, plant_foreign, wait_until


def children_of_grids(view: SimView) -> int:
    index = Index(view)
    return sum(len(owned) for owned in index.owned.values())


async def no_writes_for(env: RelEnv, seconds: float) -> None:
    """Quiet: the (subprocess) controller made no write for `seconds`."""
    loop = env.sim.clock
    last, since = env.writes(), loop.monotonic()
    while loop.monotonic() - since < seconds:
        await loop.sleep(0.1)
        if env.writes() != last:
            last, since = env.writes(), loop.monotonic()


@pytest.mark.timeout(300)
async def test_rel_sigkill_mid_convergence(rel_env: RelEnv, rel_record: ScenarioRecord) -> None:
    env = rel_env
    view = SimView(env.sim)
    # Writes take 40 ms each while the first controller runs: converging 50 grids takes
    # seconds, so the kill lands in the middle of it on any machine.
    env.sim.faults.add_latency(seconds=0.04, verbs=("patch", "create", "delete"))
    first = await env.spawn_controller("--workers", "4", name="controller-1")
    churn = Churn(env, random.Random(44), keys=("zone",), max_grids=SCALE.kill_grids)
    for _ in range(SCALE.kill_grids):
        churn.create_grid()
    exp = Expectations(grids=churn.ledger())
    plant_foreign(env, exp)
    expected_children = sum(3 if r != "servicegrids" else 1 for r, _ in churn.grids)

    await wait_until(
        lambda: children_of_grids(view) >= expected_children // 4,
        timeout=60,
        what=f"a quarter of {expected_children} children (log: {first.log_tail()})",
        interval=0.02,
    )
    await first.kill()
    at_kill = children_of_grids(view)
    assert first.process.returncode == -signal.SIGKILL
    assert at_kill < expected_children, "the kill did not land mid-convergence"
    env.sim.faults.clear()

    second = await env.spawn_controller("--workers", "4", name="controller-2")

    async def settled() -> None:
        await no_writes_for(env, 1.5)

    result = await converge(view, exp, deadline=SCALE.converge_deadline, settled=settled)
    assert result.verdict.lost == 0
    assert second.alive(), second.log_tail()

    rel_record.add_faults([("SIGKILL of the controller", 1)])
    rel_record.churn = {
        "grids created": len(churn.grids),
        "children at the kill": at_kill,
        "children expected": expected_children,
    }
    rel_record.invariant_checks += result.verdict.checks
    rel_record.invariant_passes += 1
    rel_record.reconverge_seconds.append(result.seconds)
    rel_record.write()
