"""Multi-cluster lifecycle: cluster namespaces coming and going, spec removals, the Secret's
life, every grid kind, and names that are taken (API-only clusters: no pods needed)."""

from __future__ import annotations

from typing import Any

from fed_support import CLUSTER_ID, HUB_NAMESPACES, NS, World, b64, fixture

DG = "deploymentgrids"
GRID = "deploymentgrid-demo"


def _spec(world: World, member: str, resource: str = DG, name: str = GRID) -> dict[str, Any]:
    obj = world.member(member).get(resource, name)
    return dict((obj or {}).get("spec") or {})


def _hub_condition(world: World, member: str, resource: str, name: str) -> dict[str, Any]:
    grid = world.hub.get(resource, name) or {}
    wanted = f"federation.superedge.io/{HUB_NAMESPACES[member]}"
    for condition in (grid.get("status") or {}).get("conditions") or ():
        if condition.get("type") == wanted:
            return dict(condition)
    return {}


async def _start(world: World) -> None:
    world.a.add_node("a-node-1", zone="zone1")
    world.b.add_node("b-node-1", zone="zone2")
    for cluster in world.clusters:
        await world.start_controller(cluster)


async def test_cluster_namespaces_and_spec_removals(fed_bare_world: World) -> None:
    world = fed_bare_world
    hub, a = world.hub, world.a
    for member in ("a", "b"):
        world.member(member).api.create("secrets", world.secret(member))
    await _start(world)
    hub.api.create(DG, fixture("deploymentgrid-multicluster.yaml"), namespace=NS)
    await world.wait_for(lambda: a.get("deployments", f"{GRID}-zone1"), what="zone1 in A")
    await world.wait_for(lambda: world.b.get("deployments", f"{GRID}-zone2"), what="zone2 in B")

    # A spec removal in the hub reaches the copies and the local grids.
    hub.as_manager("kubectl-edit").patch(
        DG, GRID, {"spec": {"templates": {"zone2": None}, "templatePool": {"test2": None}}},
        namespace=NS,
    )  # fmt: skip
    await world.wait_for(
        lambda: (
            "test2" not in _spec(world, "a").get("templatePool", {})
            and "zone2" not in _spec(world, "a").get("templates", {})
        ),
        what="the removed pool entry gone from A's local grid",
    )
    copy = world.copy("b", GRID)
    assert copy is not None
    assert "test2" not in copy["spec"]["templatePool"]
    # B's unit now uses the default template (test1, 2 replicas).
    await world.wait_for(
        lambda: (
            (world.b.get("deployments", f"{GRID}-zone2") or {}).get("spec", {}).get("replicas") == 2
        ),
        what="B's zone2 Deployment on template test1",
    )

    # A namespace losing its cluster label loses its copy; the member cleans up after it.
    hub.as_manager("clusternet").patch(
        "namespaces", HUB_NAMESPACES["a"], {"metadata": {"labels": {CLUSTER_ID: None}}}
    )
    await world.wait_for(
        lambda: world.copy("a", GRID) is None and a.get(DG, GRID) is None,
        what="A's copy and local grid deleted",
    )
    await world.wait_for(
        lambda: (
            not _hub_condition(world, "a", DG, GRID)
            and not any(k.startswith(HUB_NAMESPACES["a"]) for k in _states(world))
        ),
        what="A's condition and states gone from the hub's status",
    )

    # Labelled again (a label change of an existing namespace, not a creation): copied again.
    hub.as_manager("clusternet").patch(
        "namespaces", HUB_NAMESPACES["a"], {"metadata": {"labels": {CLUSTER_ID: "a-again"}}}
    )
    await world.wait_for(lambda: a.get(DG, GRID), what="A's local grid back")
    await world.settled()
    assert world.hub.terminating() == []
    assert world.controllers_failed() == []


def _states(world: World) -> dict[str, Any]:
    grid = world.hub.get(DG, GRID) or {}
    return dict((grid.get("status") or {}).get("states") or {})


async def test_parent_secret_created_rotated_and_deleted(fed_bare_world: World) -> None:
    world = fed_bare_world
    hub, a = world.hub, world.a
    await _start(world)
    hub.api.create(DG, fixture("deploymentgrid-multicluster.yaml"), namespace=NS)
    await world.wait_for(lambda: world.copy("a", GRID), what="A's copy in the hub")
    assert a.sample("servicegroup_federation_hub_sessions_total") == 0

    # Creating the Secret after the controller started takes effect without a restart.
    a.api.create("secrets", world.secret("a"))
    await world.wait_for(lambda: a.get(DG, GRID), what="A's local grid")
    await world.wait_for(
        lambda: a.sample("servicegroup_federation_hub_connected") == 1, what="A connected"
    )
    assert a.sample("servicegroup_federation_hub_sessions_total") == 1

    # Rotating the token starts a new session; nothing is lost meanwhile.
    a.as_manager("clusternet-agent").patch(
        "secrets",
        "parent-cluster",
        {"data": {"token": b64("token-2")}},
        namespace="clusternet-system",
    )
    await world.wait_for(
        lambda: a.sample("servicegroup_federation_hub_sessions_total") == 2,
        what="a second hub session",
    )
    await world.wait_for(
        lambda: a.sample("servicegroup_federation_hub_connected") == 1, what="A connected again"
    )
    assert a.get(DG, GRID) is not None

    # The new session works: a change in the hub arrives.
    hub.as_manager("kubectl-edit").patch(
        DG, GRID, {"metadata": {"labels": {"team": "edge"}}}, namespace=NS
    )
    await world.wait_for(
        lambda: (
            ((a.get(DG, GRID) or {}).get("metadata", {}).get("labels") or {}).get("team") == "edge"
        ),
        what="the hub's new label on A's local grid",
    )

    # A Secret without usable credentials stops the session (and says why); the local grid
    # stays: a member never deletes anything because it cannot see the hub.
    a.as_manager("clusternet-agent").patch(
        "secrets",
        "parent-cluster",
        {"data": {"parent-url": None}},
        namespace="clusternet-system",
    )
    await world.wait_for(
        lambda: a.events("InvalidHubCredentials", namespace="clusternet-system"),
        what="an InvalidHubCredentials Event",
    )
    await world.wait_for(
        lambda: a.sample("servicegroup_federation_hub_connected") == 0, what="A disconnected"
    )
    a.api.delete("secrets", "parent-cluster", namespace="clusternet-system")
    hub.api.delete(DG, GRID, namespace=NS)
    await world.wait_for(lambda: world.copy("b", GRID) is None, what="B's copy deleted")
    # A's copy is held by A's finalizer until A can act on it; A is disconnected, so its
    # local grid is still there.
    assert a.get(DG, GRID) is not None
    copy_a = world.copy("a", GRID)
    assert copy_a is not None
    assert copy_a["metadata"].get("deletionTimestamp")

    # Reconnected, A deletes its local grid and releases the copy: nothing stays Terminating.
    a.api.create("secrets", world.secret("a"))
    await world.wait_for(
        lambda: world.copy("a", GRID) is None and a.get(DG, GRID) is None,
        what="A's local grid deleted and its copy released",
    )
    assert hub.terminating() == []
    assert world.controllers_failed() == []


async def test_every_grid_kind_and_taken_names(fed_bare_world: World) -> None:
    world = fed_bare_world
    hub, a, b = world.hub, world.a, world.b
    for member in ("a", "b"):
        world.member(member).api.create("secrets", world.secret(member))
    # A grid of the same name already exists in A, made by someone else: never touched.
    foreign = fixture("statefulsetgrid-demo.yaml")
    foreign["metadata"]["namespace"] = NS
    a.api.create("statefulsetgrids", foreign)
    await _start(world)

    ssg = fixture("statefulsetgrid-demo.yaml")
    ssg["metadata"].setdefault("labels", {})["superedge.io/fed"] = "yes"
    ssg["metadata"]["namespace"] = NS
    sg = fixture("servicegrid-demo.yaml")
    sg["metadata"].setdefault("labels", {})["superedge.io/fed"] = "yes"
    sg["metadata"]["namespace"] = NS
    sg["spec"]["gridUniqKey"] = "zone"
    ssg["spec"]["gridUniqKey"] = "zone"
    hub.api.create("statefulsetgrids", ssg)
    hub.api.create("servicegrids", sg)
    ssg_name, sg_name = ssg["metadata"]["name"], sg["metadata"]["name"]

    # B gets both local grids, and the grids' own children.
    await world.wait_for(
        lambda: b.get("statefulsetgrids", ssg_name) and b.get("servicegrids", sg_name),
        what="both local grids in B",
    )
    await world.wait_for(lambda: b.get("services", f"{sg_name}-svc"), what="B's grid Service")
    await world.wait_for(
        lambda: b.get("statefulsets", f"{ssg_name}-zone2"), what="B's zone2 StatefulSet"
    )
    await world.wait_for(
        lambda: _hub_condition(world, "b", "servicegrids", sg_name).get("status") == "True",
        what="B's per-cluster condition on the ServiceGrid",
    )

    # A: the ServiceGrid is made; the StatefulSetGrid name is taken by A's own grid, which is
    # left alone, and the hub hears why.
    await world.wait_for(lambda: a.get("servicegrids", sg_name), what="A's local ServiceGrid")
    await world.wait_for(
        lambda: (
            _hub_condition(world, "a", "statefulsetgrids", ssg_name).get("reason")
            == "LocalGridConflict"
        ),
        what="LocalGridConflict reported to the hub",
    )
    mine = a.get("statefulsetgrids", ssg_name)
    assert mine is not None
    assert "superedge.io/target-namespace" not in (mine["metadata"].get("labels") or {})
    assert a.events("LocalGridConflict", namespace=NS)

    # The hub: a name taken in a cluster namespace by something that is not a copy.
    taken = fixture("servicegrid-demo.yaml")
    taken["metadata"] = {"name": "taken", "namespace": HUB_NAMESPACES["b"]}
    hub.api.create("servicegrids", taken)
    clash = fixture("servicegrid-demo.yaml")
    clash["metadata"] = {"name": "taken", "namespace": NS, "labels": {"superedge.io/fed": "yes"}}
    hub.api.create("servicegrids", clash)
    await world.wait_for(
        lambda: _hub_condition(world, "b", "servicegrids", "taken").get("reason") == "CopyConflict",
        what="CopyConflict on the hub original",
    )
    assert hub.events("CopyConflict", namespace=NS)
    assert "superedge.io/dis" not in (
        (hub.get("servicegrids", "taken", namespace=HUB_NAMESPACES["b"]) or {})
        .get("metadata", {})
        .get("labels")
        or {}
    )
    await world.wait_for(lambda: a.get("servicegrids", "taken"), what="A's copy of 'taken'")

    # Copies are never reconciled as grids in the hub: no child of theirs exists there.
    for member in ("a", "b"):
        assert hub.list("statefulsets", namespace=HUB_NAMESPACES[member]) == []
        assert [
            s["metadata"]["name"] for s in hub.list("services", namespace=HUB_NAMESPACES[member])
        ] in ([], ["taken-svc"])
    assert world.controllers_failed() == []
