"""The upstream documentation's multi-cluster example, across a hub and two member clusters.

Hub: the `deploymentgrid-demo` DeploymentGrid labelled `superedge.io/fed: "yes"` (unchanged
upstream manifest: `zone1` uses pool template test1 with 2 replicas, `zone2` test2 with 3).
Member A has two nodes in `zone1`; member B starts without the label.
"""

from __future__ import annotations

from typing import Any

from fed_support import HUB_NAMESPACES, NS, World, fixture

GRID = "deploymentgrid-demo"
DG = "deploymentgrids"
FINALIZER = "superedge.io/federation"


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _states(world: World) -> dict[str, Any]:
    grid = world.hub.get(DG, GRID) or {}
    return dict((grid.get("status") or {}).get("states") or {})


def _condition(world: World, member: str) -> dict[str, Any] | None:
    grid = world.hub.get(DG, GRID) or {}
    wanted = f"federation.superedge.io/{HUB_NAMESPACES[member]}"
    for condition in (grid.get("status") or {}).get("conditions") or ():
        if condition.get("type") == wanted:
            return dict(condition)
    return None


def _image(world: World, member: str, name: str) -> str | None:
    deployment = world.member(member).get("deployments", name)
    if deployment is None:
        return None
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


async def _start_example(world: World) -> None:
    world.a.add_node("a-node-1", zone="zone1")
    world.a.add_node("a-node-2", zone="zone1")
    world.b.add_node("b-node-1")
    world.b.add_node("b-node-2")
    for cluster in world.clusters:
        await world.start_controller(cluster)
    world.hub.api.create(DG, fixture("deploymentgrid-multicluster.yaml"), namespace=NS)
    await world.wait_for(
        lambda: world.a.deployment_ready(f"{GRID}-zone1", 2),
        what="deploymentgrid-demo-zone1 with 2 ready replicas in A",
    )


async def test_upstream_multicluster_example(fed_world: World) -> None:
    world = fed_world
    await _start_example(world)
    hub, a, b = world.hub, world.a, world.b

    # The hub: one copy per cluster namespace, labelled as upstream's, and the
    # original's own children never created in the hub (it has no node anyway) nor the
    # copies reconciled as grids there.
    original = hub.get(DG, GRID)
    assert original is not None
    for member in ("a", "b"):
        copy = world.copy(member, GRID)
        assert copy is not None
        labels = copy["metadata"]["labels"]
        assert labels["superedge.io/dis"] == "yes"
        assert labels["superedge.io/target-namespace"] == NS
        assert labels["superedge.io/fed"] == "yes"
        # Controlled through a uid mark: an ownerReference cannot cross namespaces.
        annotations = copy["metadata"]["annotations"]
        assert annotations["superedge.io/original-uid"] == original["metadata"]["uid"]
        assert "ownerReferences" not in copy["metadata"]
        # The same spec; nulls (`creationTimestamp: null` in the manifest's pod templates)
        # mean "unset" to server-side apply, so the copy simply does not have them.
        assert copy["spec"] == _without_nulls(original["spec"])
    assert hub.list("deployments", namespace=None) == []

    # A: the local grid in the target namespace, reconciled as a grid of A's own.
    local = a.get(DG, GRID)
    assert local is not None
    assert "superedge.io/dis" not in local["metadata"]["labels"]
    assert a.get("deployments", f"{GRID}-zone2") is None
    assert FINALIZER in world.copy("a", GRID)["metadata"]["finalizers"]  # type: ignore[index]

    # B: no node has the key, so no local grid, and its copy says why.
    assert b.get(DG, GRID) is None
    await world.wait_for(
        lambda: (_condition(world, "b") or {}).get("reason") == "NoNodeUnits",
        what="B's per-cluster condition NoNodeUnits",
    )
    await world.wait_for(
        lambda: (_condition(world, "a") or {}).get("status") == "True",
        what="A's per-cluster condition Ready",
    )

    # Labelling a node of B zone2 creates deploymentgrid-demo-zone2 with 3 replicas in B.
    b.label_node("b-node-1", {"zone": "zone2"})
    await world.wait_for(
        lambda: b.deployment_ready(f"{GRID}-zone2", 3),
        what="deploymentgrid-demo-zone2 with 3 ready replicas in B",
    )
    assert b.get("deployments", f"{GRID}-zone1") is None

    # The hub's status shows both units, keyed by cluster namespace.
    key_a = f"{HUB_NAMESPACES['a']}/zone1"
    key_b = f"{HUB_NAMESPACES['b']}/zone2"
    await world.wait_for(
        lambda: (
            _states(world).get(key_a, {}).get("readyReplicas") == 2
            and _states(world).get(key_b, {}).get("readyReplicas") == 3
        ),
        what="both units in the hub's status.states",
    )
    assert set(_states(world)) == {key_a, key_b}
    await world.wait_for(
        lambda: (_condition(world, "b") or {}).get("status") == "True",
        what="B's per-cluster condition Ready",
    )
    # Settled: the hub's grid reconciler and federation share the original's status without
    # undoing each other's writes, and nothing else keeps writing either.
    await world.settled()
    assert set(_states(world)) == {key_a, key_b}

    # Changing the image of the Deployment in A by hand is reverted.
    a.as_manager("kubectl-edit").patch(
        "deployments",
        f"{GRID}-zone1",
        {"spec": {"template": {"spec": {"containers": [{"name": "echo", "image": "nginx:1"}]}}}},
        namespace=NS,
        patch_type="strategic",
    )
    await world.wait_for(
        lambda: _image(world, "a", f"{GRID}-zone1") == "superedge/echoserver:2.2",
        what="the hand-edited image reverted in A",
    )

    # So is a hand edit of the local grid itself (a field the hub sets).
    a.as_manager("kubectl-edit").patch(
        DG, GRID, {"spec": {"templatePool": {"test1": {"replicas": 5}}}}, namespace=NS
    )
    await world.wait_for(
        lambda: (a.get(DG, GRID) or {})["spec"]["templatePool"]["test1"]["replicas"] == 2,
        what="the hand-edited local grid reverted in A",
    )

    # Deleting the grid in the hub removes everything in A and B, and leaves nothing
    # Terminating anywhere.
    hub.api.delete(DG, GRID, namespace=NS)

    def all_gone() -> bool:
        return (
            hub.get(DG, GRID) is None
            and world.copy("a", GRID) is None
            and world.copy("b", GRID) is None
            and a.get(DG, GRID) is None
            and b.get(DG, GRID) is None
            and a.get("deployments", f"{GRID}-zone1") is None
            and b.get("deployments", f"{GRID}-zone2") is None
        )

    await world.wait_for(all_gone, what="the grid gone from the hub, A and B")
    for cluster in world.clusters:
        assert cluster.terminating() == []
    assert world.controllers_failed() == []


async def test_hub_unreachable_loses_nothing(fed_world: World) -> None:
    world = fed_world
    await _start_example(world)
    hub, a, b = world.hub, world.a, world.b
    await world.wait_for(
        lambda: (_condition(world, "a") or {}).get("status") == "True",
        what="A's per-cluster condition Ready",
    )

    # The hub stops answering anyone (its own controller included) and drops every watch.
    hub.sim.faults.fail(code=503, fraction=1.0)
    hub.sim.store.close_all_watches()

    # Meanwhile B gains zone2 (B cannot put its finalizer on the copy: no local grid yet),
    # and the original's zone1 template gets a new image in the hub.
    b.label_node("b-node-1", {"zone": "zone2"})
    await world.wait_for(
        lambda: (
            b.sample(
                "servicegroup_federation_failures_total",
                {"side": "member", "reason": "HubUnreachable"},
            )
            > 0
        ),
        what="B noticing the hub is unreachable",
    )
    assert b.sample("servicegroup_federation_hub_connected") == 0
    grid = hub.get(DG, GRID)
    assert grid is not None
    pool = grid["spec"]["templatePool"]
    pool["test1"]["template"]["spec"]["containers"][0]["image"] = "superedge/echoserver:2.3"
    hub.as_manager("kubectl-edit").patch(
        DG, GRID, {"spec": {"templatePool": {"test1": pool["test1"]}}}, namespace=NS
    )

    # Nothing is lost in A while the hub is away.
    assert a.get(DG, GRID) is not None
    assert a.deployment_ready(f"{GRID}-zone1", 2)
    assert b.get(DG, GRID) is None
    assert b.events("HubUnreachable", namespace="clusternet-system")

    # The hub returns: everything converges.
    hub.sim.faults.clear()
    await world.wait_for(
        lambda: b.deployment_ready(f"{GRID}-zone2", 3),
        what="deploymentgrid-demo-zone2 in B after the hub returned",
    )
    await world.wait_for(
        lambda: _image(world, "a", f"{GRID}-zone1") == "superedge/echoserver:2.3",
        what="the new image in A after the hub returned",
    )
    key_a = f"{HUB_NAMESPACES['a']}/zone1"
    key_b = f"{HUB_NAMESPACES['b']}/zone2"
    await world.wait_for(
        lambda: (
            {key_a, key_b} <= set(_states(world))
            and _states(world)[key_b].get("readyReplicas") == 3
        ),
        what="both units in the hub's status after the outage",
    )
    await world.wait_for(
        lambda: (
            a.sample("servicegroup_federation_hub_connected") == 1
            and b.sample("servicegroup_federation_hub_connected") == 1
        ),
        what="both members connected again",
    )
    await world.settled()
    assert world.controllers_failed() == []
