"""Zero writes at rest: after convergence, a resync and a restart send no write at all."""

from __future__ import annotations

from ctl_scenarios.cluster import CtlCluster, scenario

DG = "deploymentgrid-demo"
SSG = "statefulsetgrid-demo"
GRIDS = {
    "deploymentgrid": "deploymentgrid-demo.yaml",
    "statefulsetgrid": "statefulsetgrid-demo.yaml",
    "servicegrid": "servicegrid-demo.yaml",
}


async def converge(c: CtlCluster) -> int:
    for manifest in GRIDS.values():
        await c.create(c.grid(manifest))
    for zone in c.zones:
        await c.wait_for(lambda z=zone: c.get("deployments", f"{DG}-{z}"))
    # With pods running, wait for every unit to be ready (each readiness change is a write).
    await c.grids_ready(("deploymentgrids", DG), ("statefulsetgrids", SSG))
    return await c.settled()


@scenario()
async def zero_writes_after_convergence_resync_and_restart(c: CtlCluster) -> None:
    controller = await c.start_controller(sync_period=0.3)
    writes = await converge(c)
    units = len(c.zones)
    # The minimum: one apply per child (3 + 3 + 1), one status write per grid at least.
    if c.has_request_accounting:
        assert c.count(verb="patch", resource="deployments.apps") == units
        assert c.count(verb="patch", resource="statefulsets.apps") == units
        assert c.count(verb="patch", resource="services") == 1
        assert c.count(verb="create", resource="deployments.apps") == 0  # apply only
    assert c.child_writes("DeploymentGrid", "apply") == units
    assert c.child_writes("StatefulSetGrid", "apply") == units
    assert c.child_writes("ServiceGrid", "apply") == 1

    # Periodic resyncs re-reconcile every grid: nothing is written.
    before = {name: controller.reconciles(name) for name in GRIDS}
    await c.wait_for(
        lambda: all(controller.reconciles(n) >= before[n] + 2 for n in GRIDS),
        what="two resync rounds",
    )
    assert await c.settled(quiet=0.5) == writes

    # A restarted controller lists everything, reconciles every grid, and writes nothing.
    await c.stop_controller(controller)
    restarted = await c.start_controller()
    await c.wait_for(lambda: all(restarted.reconciles(n) >= 1 for n in GRIDS))
    assert await c.settled(quiet=0.5) == writes
    assert c.writes() == writes


@scenario()
async def status_carries_observed_generation_and_events_are_not_repeated(
    c: CtlCluster,
) -> None:
    await c.start_controller()
    await converge(c)
    grid = await c.get("deploymentgrids", DG)
    assert grid is not None
    assert grid["status"]["observedGeneration"] == grid["metadata"]["generation"]
    created = await c.events(reason="Created", name=DG)
    assert len(created) == len(c.zones)
    assert all(e["count"] == 1 and e["type"] == "Normal" for e in created)
    assert all(e["source"]["component"] == "servicegroup-controller" for e in created)


@scenario()
async def grid_metrics(c: CtlCluster) -> None:
    controller = await c.start_controller()
    await converge(c)
    registry = controller.metrics.registry

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    units = len(c.zones)
    assert sample("servicegroup_nodeunits", key=c.key) == units
    for kind, count in (("DeploymentGrid", units), ("StatefulSetGrid", units), ("ServiceGrid", 1)):
        assert sample("servicegroup_grid_children", kind=kind) == count
        if c.has_workloads:
            assert sample("servicegroup_grid_children_ready", kind=kind) == count
    assert (
        sample("servicegroup_child_writes_total", kind="DeploymentGrid", operation="apply") == units
    )
    assert sample("servicegroup_child_writes_total", kind="ServiceGrid", operation="apply") == 1
    assert sample("servicegroup_child_writes_total", kind="DeploymentGrid", operation="delete") == 0


@scenario()
async def only_watched_namespaces_are_reconciled(c: CtlCluster) -> None:
    elsewhere = await c.create_namespace("elsewhere")
    await c.start_controller(namespaces=(c.namespace,))
    other = c.grid("deploymentgrid-demo.yaml")
    other["metadata"]["namespace"] = elsewhere
    await c.create(other)
    await c.create(c.grid("deploymentgrid-demo.yaml"))
    for zone in c.zones:
        await c.wait_for(lambda z=zone: c.get("deployments", f"{DG}-{z}"))
    await c.settled()
    assert await c.items("deployments", namespace=elsewhere) == []
    unreconciled = await c.get("deploymentgrids", DG, namespace=elsewhere)
    assert unreconciled is not None and "status" not in unreconciled
