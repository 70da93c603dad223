"""Two controllers with --leader-elect: one reconciles; kill it and the other takes over."""

from __future__ import annotations

from ctl_scenarios.cluster import CtlCluster, RunningController, scenario

DG = "deploymentgrid-demo"
LEASE = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.25}


def leader_of(controllers: list[RunningController]) -> RunningController | None:
    leaders = [c for c in controllers if c.is_leader()]
    assert len(leaders) <= 1, "two leaders at once"
    return leaders[0] if leaders else None


@scenario()
async def only_the_leader_reconciles_and_the_other_takes_over(c: CtlCluster) -> None:
    first = await c.start_controller(identity="ctl-a", leader_elect=True, **LEASE)
    second = await c.start_controller(identity="ctl-b", leader_elect=True, **LEASE)
    both = [first, second]
    leader = await c.wait_for(lambda: leader_of(both), what="a leader")
    follower = second if leader is first else first

    await c.create(c.grid("deploymentgrid-demo.yaml"))
    for zone in c.zones:
        await c.wait_for(lambda z=zone: c.get("deployments", f"{DG}-{z}"))
    await c.settled()
    assert leader.child_writes() > 0
    assert follower.child_writes() == 0
    assert follower.reconciles("deploymentgrid") == 0
    lease = await c.get("leases", "servicegroup-controller", namespace=c.lease_namespace)
    assert lease is not None and lease["spec"]["holderIdentity"] == leader.process.identity

    # Kill the leader: the other one acquires the Lease and reconciles from then on.
    await c.stop_controller(leader)
    await c.wait_for(follower.is_leader, what="takeover", timeout=10)
    await c.relabel(c.nodes_of(c.zones[-1])[0], "zone-9")  # kubesim: node-2a
    await c.wait_for(lambda: c.get("deployments", f"{DG}-zone-9"), what="new leader works")
    assert follower.child_writes() > 0
    lease = await c.get("leases", "servicegroup-controller", namespace=c.lease_namespace)
    assert lease is not None and lease["spec"]["holderIdentity"] == follower.process.identity
