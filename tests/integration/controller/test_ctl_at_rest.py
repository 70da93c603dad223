"""Zero writes at rest: after convergence, a resync and a restart send no write at all."""

from __future__ import annotations

from ctl_support import ZONES, Env, RunningController, fixture

GRIDS = {
    "deploymentgrid": "deploymentgrid-demo.yaml",
    "statefulsetgrid": "statefulsetgrid-demo.yaml",
    "servicegrid": "servicegrid-demo.yaml",
}


async def converge(env: Env) -> int:
    for manifest in GRIDS.values():
        env.create(fixture(manifest))
    for zone in ZONES:
        await env.wait_for(lambda z=zone: env.get("deployments", f"deploymentgrid-demo-{z}"))
    if env.workloads is not None:

        def all_ready() -> bool:
            for plural, name in (
                ("deploymentgrids", "deploymentgrid-demo"),
                ("statefulsetgrids", "statefulsetgrid-demo"),
            ):
                status = (env.get(plural, name) or {}).get("status") or {}
                if status.get("readyUnits") != len(ZONES):
                    return False
            return True

        await env.wait_for(all_ready, what="every unit ready", timeout=30)
    return await env.settled()


async def test_zero_writes_after_convergence_resync_and_restart(ctl_env: Env) -> None:
    env = ctl_env
    controller = await env.start_controller(sync_period=0.3)
    writes = await converge(env)
    # The minimum: one apply per child (3 + 3 + 1), one status write per grid at least.
    assert env.count(verb="patch", resource="deployments.apps") == 3
    assert env.count(verb="patch", resource="statefulsets.apps") == 3
    assert env.count(verb="patch", resource="services") == 1
    assert env.count(verb="create", resource="deployments.apps") == 0  # apply only

    # Periodic resyncs re-reconcile every grid: nothing is written.
    before = {name: controller.reconciles(name) for name in GRIDS}
    await env.wait_for(
        lambda: all(controller.reconciles(n) >= before[n] + 2 for n in GRIDS),
        what="two resync rounds",
    )
    assert await env.settled(quiet=0.5) == writes

    # A restarted controller lists everything, reconciles every grid, and writes nothing.
    await env.stop_controller(controller)
    restarted = await env.start_controller()
    await env.wait_for(lambda: all(restarted.reconciles(n) >= 1 for n in GRIDS))
    assert await env.settled(quiet=0.5) == writes
    assert env.writes() == writes


async def test_status_carries_observed_generation_and_events_are_not_repeated(
    ctl_env: Env, ctl_controller: RunningController
) -> None:
    env = ctl_env
    await converge(env)
    grid = env.get("deploymentgrids", "deploymentgrid-demo")
    assert grid is not None
    assert grid["status"]["observedGeneration"] == grid["metadata"]["generation"]
    created = env.events(reason="Created", name="deploymentgrid-demo")
    assert len(created) == len(ZONES)
    assert all(e["count"] == 1 and e["type"] == "Normal" for e in created)
    assert all(e["source"]["component"] == "servicegroup-controller" for e in created)


async def test_grid_metrics(ctl_env: Env, ctl_controller: RunningController) -> None:
    env = ctl_env
    await converge(env)
    registry = ctl_controller.metrics.registry

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("servicegroup_nodeunits", key="zone") == len(ZONES)
    for kind, count in (("DeploymentGrid", 3), ("StatefulSetGrid", 3), ("ServiceGrid", 1)):
        assert sample("servicegroup_grid_children", kind=kind) == count
        if env.workloads is not None:
            assert sample("servicegroup_grid_children_ready", kind=kind) == count
    assert sample("servicegroup_child_writes_total", kind="DeploymentGrid", operation="apply") == 3
    assert sample("servicegroup_child_writes_total", kind="ServiceGrid", operation="apply") == 1
    assert sample("servicegroup_child_writes_total", kind="DeploymentGrid", operation="delete") == 0


async def test_only_watched_namespaces_are_reconciled(ctl_env: Env) -> None:
    env = ctl_env
    env.api.create("namespaces", {"metadata": {"name": "elsewhere"}})
    await env.start_controller(namespaces=("default",))
    other = fixture("deploymentgrid-demo.yaml")
    other["metadata"]["namespace"] = "elsewhere"
    env.create(other)
    env.create(fixture("deploymentgrid-demo.yaml"))
    for zone in ZONES:
        await env.wait_for(lambda z=zone: env.get("deployments", f"deploymentgrid-demo-{z}"))
    await env.settled()
    assert env.api.list("deployments", namespace="elsewhere") == []
    assert "status" not in env.api.get(
        "deploymentgrids", "deploymentgrid-demo", namespace="elsewhere"
    )
