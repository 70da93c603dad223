"""Two controllers with --leader-elect: one reconciles; kill it and the other takes over."""

from __future__ import annotations

from ctl_support import ZONES, Env, RunningController, fixture

LEASE = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.25}


def leader_of(controllers: list[RunningController]) -> RunningController | None:
    leaders = [c for c in controllers if c.is_leader()]
    assert len(leaders) <= 1, "two leaders at once"
    return leaders[0] if leaders else None


async def test_only_the_leader_reconciles_and_the_other_takes_over(ctl_env: Env) -> None:
    env = ctl_env
    first = await env.start_controller(identity="ctl-a", leader_elect=True, **LEASE)
    second = await env.start_controller(identity="ctl-b", leader_elect=True, **LEASE)
    both = [first, second]
    leader = await env.wait_for(lambda: leader_of(both), what="a leader")
    follower = second if leader is first else first

    env.create(fixture("deploymentgrid-demo.yaml"))
    for zone in ZONES:
        await env.wait_for(lambda z=zone: env.get("deployments", f"deploymentgrid-demo-{z}"))
    await env.settled()
    assert leader.child_writes() > 0
    assert follower.child_writes() == 0
    assert follower.reconciles("deploymentgrid") == 0
    lease = env.get("leases", "servicegroup-controller", namespace="servicegroup-system")
    assert lease is not None and lease["spec"]["holderIdentity"] == leader.process.identity

    # Kill the leader: the other one acquires the Lease and reconciles from then on.
    await env.stop_controller(leader)
    await env.wait_for(follower.is_leader, what="takeover", timeout=10)
    env.relabel("node-2a", {"zone": "zone-9"})
    await env.wait_for(
        lambda: env.get("deployments", "deploymentgrid-demo-zone-9"), what="new leader works"
    )
    assert follower.child_writes() > 0
    lease = env.get("leases", "servicegroup-controller", namespace="servicegroup-system")
    assert lease is not None and lease["spec"]["holderIdentity"] == follower.process.identity
