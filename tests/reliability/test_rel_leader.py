"""Scenario 5: two `servicegroup controller` processes with leader election; the leader is
SIGKILLed (it never releases the Lease) while grids are changing; the follower takes the Lease
once it expires and finishes the job. Only one of them ever holds it. Re-convergence is
counted from the kill (it includes the takeover)."""

from __future__ import annotations

import random

import pytest
from rel_invariants import Expectations, SimView, converge
from rel_support import (
    SCALE,
    Churn,
    RelEnv,
    ScenarioRecord,
    SubprocessController,
    ops_summary,
    plant_foreign,
    wait_until,
)

LEASE_ARGS = (
    "--leader-elect",
    "--lease-duration",
    "2s",
    "--renew-deadline",
    "1.5s",
    "--retry-period",
    "0.25s",
)


async def child_writes(controller: SubprocessController) -> float:
    text = await controller.metrics_text()
    assert text is not None
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("servicegroup_child_writes_total{")
    )


def holder(env: RelEnv) -> str | None:
    lease = env.get("leases", "servicegroup-controller", namespace="servicegroup-system")
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")


@pytest.mark.timeout(300)
async def test_rel_leader_killed_follower_takes_over(
    rel_env: RelEnv, rel_record: ScenarioRecord
) -> None:
    env = rel_env
    view = SimView(env.sim)
    a = await env.spawn_controller(*LEASE_ARGS, name="controller-a")
    b = await env.spawn_controller(*LEASE_ARGS, name="controller-b")

    async def leaders() -> list[SubprocessController]:
        found = [c for c in (a, b) if c.alive() and await c.is_leader()]
        assert len(found) <= 1, "two leaders at once"
        return found

    leader = (await wait_until(leaders, timeout=60, what="a leader", interval=0.2))[0]
    follower = b if leader is a else a
    first_holder = holder(env)
    assert first_holder

    churn = Churn(env, random.Random(55), max_grids=12)
    exp = Expectations()
    plant_foreign(env, exp)
    for _ in range(8):
        churn.create_grid()
    # Kill the leader while it is converging, and keep changing things meanwhile.
    await churn.run(seconds=1.0)
    assert await child_writes(follower) == 0, "the follower wrote children"
    loop = env.sim.clock
    killed = loop.monotonic()
    await leader.kill()

    async def takeover() -> float:
        await wait_until(follower.is_leader, timeout=30, what="the follower to take over")
        return loop.monotonic() - killed

    took_over = env.spawn(takeover(), name="takeover")
    # Changes while nobody leads (the Lease has not expired yet), then under the new leader.
    await churn.run(seconds=2.0)
    takeover_seconds = await took_over
    assert holder(env) not in (None, first_holder)

    async def settled() -> None:
        loop = env.sim.clock
        last, since = env.writes(), loop.monotonic()
        while loop.monotonic() - since < 1.5:
            await loop.sleep(0.1)
            if env.writes() != last:
                last, since = env.writes(), loop.monotonic()

    exp.grids = churn.ledger()
    waiting_from = loop.monotonic()
    result = await converge(view, exp, deadline=SCALE.converge_deadline, settled=settled)
    since_kill = waiting_from - killed + result.seconds
    assert result.verdict.lost == 0
    assert follower.alive(), follower.log_tail()
    assert len(await leaders()) == 1

    rel_record.add_faults([("SIGKILL of the leader", 1)])
    rel_record.notes.append(
        f"follower took over {takeover_seconds:.1f} s after the kill (lease 2 s); "
        f"converged {since_kill:.1f} s after the kill"
    )
    rel_record.churn = ops_summary(churn.ops)
    rel_record.invariant_checks += result.verdict.checks
    rel_record.invariant_passes += 1
    # Re-convergence counted from the kill: the takeover is part of it.
    rel_record.reconverge_seconds.append(since_kill)
    rel_record.write()
